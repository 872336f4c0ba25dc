"""Score a method on an index of labelled scenes: segment each, evaluate each, pool.

A workflow above both the segment workflow and :mod:`lcmap.eval` (it scores), so the metrics
package needs nothing above it. ``lcmap evaluate-index`` runs it.
"""

import contextlib
import logging
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lcmap.errors import InvalidOptionError, InvalidSceneError, LcmapWarning
from lcmap.eval import check_match, evaluate, read_index
from lcmap.eval.metrics import MatchName, compute_metrics
from lcmap.eval.report import IndexResult, SceneEvaluation
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec, TilingSpec

log = logging.getLogger(__name__)


def _replay_warnings(
    caught: list[warnings.WarningMessage], repeated: dict[type[Warning], int]
) -> None:
    """Re-emit the first lcmap warning of each kind; 54 scenes should not print 54 copies."""
    for w in caught:
        if issubclass(w.category, LcmapWarning):
            repeated[w.category] = repeated.get(w.category, 0) + 1
            if repeated[w.category] > 1:
                continue
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _rows_of(entries: list[Any], sets: Sequence[str] | None, index_path: Path) -> list[Any]:
    """The index's rows of ``sets`` (every row when None)."""
    if sets is None:
        return entries
    known = sorted({e.set for e in entries})
    unknown = sorted(set(sets) - set(known))
    if unknown:
        raise InvalidOptionError(
            f"index '{index_path}' has no set {', '.join(unknown)}; its sets: {', '.join(known)}."
        )
    return [e for e in entries if e.set in sets]


def _one_class_list(entries: list[Any], index_path: Path) -> list[str]:
    """The index's one class list (pooled figures need one)."""
    class_names: list[str] = entries[0].classes
    differing = [e.name for e in entries if e.classes != class_names]
    if differing:
        sets = sorted({e.set for e in entries})
        choose = f"choose one set with sets= ({', '.join(sets)})" if len(sets) > 1 else ""
        raise InvalidSceneError(
            f"index '{index_path}' lists other classes for {differing[:3]} than "
            f"{class_names} for '{entries[0].name}'; pooled figures need one class list: "
            f"{choose or 'split the index by class list'}."
        )
    return class_names


def _recorded(
    fitted: MethodSpec, model: str | Path | None, tiling: TilingSpec, run: RunSpec
) -> dict[str, Any]:
    """What the report records of how the maps were made (the values given)."""
    made = {
        "classes": fitted.classes,
        "seed": run.seed,
        "bands": fitted.band_list,
        "options": fitted.option_dict,
        "model": model,
        "device": run.device,
        "tile": tiling.tile,
        "halo": tiling.halo,
        "batch_size": run.batch_size,
    }
    return {k: v for k, v in made.items() if v is not None and (k, v) != ("device", "auto")}


def evaluate_index(
    index_csv: str | Path,
    *,
    method: "MethodSpec | str" = "kmeans",
    model: str | Path | None = None,
    match: MatchName = "hungarian",
    ignore: Iterable[int] = (255,),
    tiling: TilingSpec = TilingSpec(),
    run: RunSpec = RunSpec(),
    workdir: str | Path | None = None,
    window_size: int = 1024,
    sets: Sequence[str] | None = None,
) -> IndexResult:
    """Segment every scene of an index and score each map against its truth.

    Each scene is mapped on its own (:func:`~lcmap.workflows.segment.segment`), then scored.

    Pooling: each scene's clusters are matched to classes *on that scene* (cluster ids of
    scenes fitted apart are not comparable), and the pooled figures come from the sum of the
    per-scene confusion matrices after matching: what a per-scene method gives when a human
    names its clusters scene by scene. Pooled accuracy is the pixel-weighted mean of the scenes'.

    Args:
        index_csv: CSV with columns ``set,name,scene,truth,classes`` (see :func:`read_index`).
        method: the segmentation method (a name, or a :class:`MethodSpec`); its number of
            clusters defaults to the number of truth classes of each scene.
        model: a saved model applied to every scene instead (its own classes).
        match: ``hungarian``, ``majority``, ``none`` or ``names`` (a named ``model``'s).
        ignore: Truth values that are not classes.
        tiling: tile size and halo of the maps.
        run: device, seed and batch size of the maps; its progress callback is called with
            ``(scenes done, scenes total)``.
        workdir: Folder for the maps (kept); default a temporary one, removed afterwards.
        window_size: Evaluation window side, in pixels.
        sets: only the rows of these sets (the index's ``set`` column); None = every row.

    Returns:
        Per-scene results and pooled figures. An lcmap warning raised by many scenes is shown
        once, then counted.

    Raises:
        InputNotFoundError: The index or a file it lists is missing.
        InvalidSceneError: A bad index, or rows with different class lists (pooling needs one).
        InvalidOptionError: a set the index does not list.
    """
    match, index_path = check_match(match), Path(index_csv)
    entries = _rows_of(read_index(index_path), sets, index_path)
    class_names = _one_class_list(entries, index_path)
    fitted = MethodSpec.of(method)
    per_map = replace(run, progress=None)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lcmap-eval-")))
        else:
            folder = Path(workdir)
            folder.mkdir(parents=True, exist_ok=True)
        scenes = []
        repeated: dict[type[Warning], int] = {}
        mapping, scoring = (fitted, model, tiling, per_map), (match, ignore, window_size)
        for i, entry in enumerate(entries, start=1):
            scenes.append(_scene(entry, folder, mapping, scoring, repeated))
            if run.progress is not None:
                run.progress(i, len(entries))
    for category, count in repeated.items():
        if count > 1:
            log.warning("%d more scenes raised %s.", count - 1, category.__name__)
    pooled = sum((s.result.confusion for s in scenes[1:]), start=scenes[0].result.confusion)
    return IndexResult(
        index=str(index_path),
        method=fitted.name or "",
        segment_options=_recorded(fitted, model, tiling, run),
        match=match,
        class_ids=list(range(len(class_names))),
        class_names=list(class_names),
        scenes=scenes,
        confusion=pooled,
        metrics=compute_metrics(pooled),
        seconds=time.perf_counter() - start,
    )


def _scene(
    entry: Any,
    folder: Path,
    mapping: tuple[MethodSpec, "str | Path | None", TilingSpec, RunSpec],
    scoring: tuple[MatchName, Iterable[int], int],
    repeated: dict[type[Warning], int],
) -> SceneEvaluation:
    """Map one index row into ``folder`` as ``mapping`` says (method, model, tiling, run) and
    score it against its truth (``scoring``: match, ignored ids, window size); the lcmap
    warnings it raises are shown the first time and counted in ``repeated``."""
    from lcmap.workflows.segment import segment  # the engine (torch) only when called

    (fitted, model, tiling, run), (match, ignore, window_size) = mapping, scoring
    t0 = time.perf_counter()
    out = folder / f"{entry.name}.tif"
    if fitted.classes is None and model is None:  # a saved model fixes its own K
        fitted = replace(fitted, classes=len(entry.classes))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment(
            entry.scene,
            OutputSpec(out, overwrite=True),
            method=fitted,
            model=model,
            tiling=tiling,
            run=run,
        )
    _replay_warnings(caught, repeated)
    result = evaluate(
        out,
        entry.truth,
        match=match,
        ignore=ignore,
        class_names=entry.classes,
        window_size=window_size,
    )
    seconds = time.perf_counter() - t0
    log.info(
        "%s: accuracy %.4f, mIoU %.4f (%.1f s)", entry.name, result.accuracy, result.miou, seconds
    )
    return SceneEvaluation(entry.set, entry.name, str(entry.scene), result, seconds)
