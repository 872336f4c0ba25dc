"""Run the parts of a map in this process or on a Dask cluster (``dask.distributed``).

Without a cluster the parts run one after another here (what ``--resume`` alone does). With
one, each part is a task: the model's bytes are scattered to every worker once, tasks return
only their pixel counts (the scheduler holds no pixels), and a task whose worker dies is
rerun elsewhere by Dask; one that fails :data:`RETRIES` more times stops the run with the
scene's name and the cause. Completed tasks drive the same progress bar as the in-process run.
"""

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lcmap.errors import InvalidOptionError, LcmapError
from lcmap.scale.parts import Part, PartJob, compute_part
from lcmap.types import ProgressFn

log = logging.getLogger(__name__)

#: Times a failing task is retried before the run stops (worker deaths are counted by Dask's
#: own ``distributed.scheduler.allowed-failures``).
RETRIES = 2


def check_scale_flags(workers: int | None, scheduler: str | None) -> None:
    """Refuse contradictory scale-out flags before any work.

    Raises:
        InvalidOptionError: both given, or fewer than one worker.
    """
    if workers is not None and scheduler is not None:
        raise InvalidOptionError("Give workers= (a new local cluster) or scheduler=, not both.")
    if workers is not None and not 1 <= workers <= 4096:
        raise InvalidOptionError(f"workers={workers} is out of range; use 1 to 4096.")


@contextlib.contextmanager
def open_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A Dask client: a new local cluster of ``workers`` processes, or the one at
    ``scheduler``; None (no Dask) when neither is given.

    Raises:
        LcmapError: Dask is not installed, or the scheduler cannot be reached.
    """
    check_scale_flags(workers, scheduler)
    if workers is None and scheduler is None:
        yield None
        return
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise LcmapError(
            "workers= and scheduler= need dask.distributed: pip install 'dask[distributed]'."
        ) from exc
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))  # type: ignore[no-untyped-call]
            except (OSError, TimeoutError) as exc:
                raise LcmapError(f"Cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        else:
            # One task at a time a worker, and the machine's cores shared out between the
            # workers' torch threads (Dask's nanny would give each worker one thread). Dask also
            # sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
            # threshold: every tile-sized array is then mmapped and faulted in afresh, which
            # slows mapping badly; lcmap's workers keep glibc's default.
            threads = max(1, (os.cpu_count() or 1) // workers)  # type: ignore[operator]
            environ = "distributed.nanny.pre-spawn-environ"
            stack.enter_context(
                dask.config.set(
                    {f"{environ}.MALLOC_TRIM_THRESHOLD_": None}
                    | {f"{environ}.{k}_NUM_THREADS": threads for k in ("OMP", "MKL", "OPENBLAS")}
                )
            )
            cluster = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    env={"LCMAP_NUM_THREADS": str(threads)},
                )
            )
            client = stack.enter_context(Client(cluster))  # type: ignore[no-untyped-call]
        log.info("dask: %d workers at %s", len(client.scheduler_info()["workers"]), client)
        yield client


def run_parts(
    client: Any,
    job: PartJob,
    parts: Sequence[Part],
    model: tuple[str, bytes],
    progress: ProgressFn | None = None,
) -> NDArray[np.int64]:
    """Compute ``parts`` of ``job`` and return their summed pixel counts.

    Args:
        client: a Dask client, or None to compute here, one part after another.
        job: the scene's job (folder, key, plan...).
        parts: the parts still to compute.
        model: ``(sha256, bytes)`` of the model file.
        progress: ``(parts done, parts)`` callback.

    Raises:
        LcmapError: a part failed (after its retries), naming the scene and the cause.
    """
    found: list[Sequence[int]] = []

    def summed() -> NDArray[np.int64]:
        total: NDArray[np.int64] = np.asarray(found, dtype=np.int64).sum(axis=0)
        return total

    def add(counts: Sequence[int]) -> None:
        found.append(counts)
        if progress is not None:
            progress(len(found), len(parts))

    if progress is not None:
        progress(0, len(parts))
    if client is None:
        for part in parts:
            add(compute_part(job, part, model))
        return summed()

    from distributed import as_completed

    shared = client.scatter([model], broadcast=True)[0]  # one object, on every worker once
    futures = {
        client.submit(
            compute_part,
            job,
            part,
            shared,
            key=f"lcmap-{part.name}-{uuid.uuid4().hex}",
            retries=RETRIES,
            pure=False,
        ): part
        for part in parts
    }
    try:
        finished = as_completed(futures)  # type: ignore[no-untyped-call]
        for future in finished:
            try:
                counts = future.result()
            except LcmapError:
                raise
            except Exception as exc:
                part = futures[future]
                raise LcmapError(
                    f"{job.scene}: {part.name} (rows {part.first_row}-"
                    f"{part.first_row + part.rows - 1}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            add(counts)
    finally:
        client.cancel(list(futures))
    return summed()
