"""``lcmap.scale.cluster``: parts on a Dask ``LocalCluster`` of worker processes give the map of one
process, even when a worker is killed mid-run; bad scale flags are one line."""

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lcmap import api
from lcmap.cli import app
from lcmap.workflows.specs import RunSpec, ScaleSpec, TilingSpec
from tests.scale._scale_data import SAMPLE, kmeans_map, needs_rgb, read


@needs_rgb
def test_local_cluster_gives_the_in_process_map_for_kmeans(tmp_path: Path, cluster: Any) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    one = kmeans_map(a, 64)
    two = kmeans_map(b, 64, ScaleSpec(part_rows=1, client=cluster))
    assert two.parts_computed == 12
    assert np.array_equal(read(a), read(b))
    assert one.class_pixels == two.class_pixels and one.nodata_pixels == two.nodata_pixels


def test_local_cluster_gives_the_in_process_map_for_blending_stego(
    tmp_path: Path, cluster: Any, stego_model: tuple[Path, Path]
) -> None:
    crop, model = stego_model
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    api.segment(crop, a, model=model, run=RunSpec(device="cpu"), tiling=TilingSpec(tile=48))
    api.segment(
        crop,
        b,
        model=model,
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=48),
        scale=ScaleSpec(part_rows=1, client=cluster),
    )
    assert np.array_equal(read(a), read(b))
    assert len(np.unique(read(a))) >= 3


def test_a_worker_killed_mid_run_changes_nothing(
    tmp_path: Path, cluster: Any, stego_model: tuple[Path, Path]
) -> None:
    crop, model = stego_model
    pids = cluster.run(os.getpid)
    victim = next(iter(pids.values()))
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 1 and not killed and total == 7:
            os.kill(victim, signal.SIGKILL)  # the other parts are queued or running
            killed.append(victim)

    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    api.segment(crop, a, model=model, run=RunSpec(device="cpu"), tiling=TilingSpec(tile=48))
    api.segment(
        crop,
        b,
        model=model,
        run=RunSpec(device="cpu", progress=progress),
        tiling=TilingSpec(tile=48),
        scale=ScaleSpec(part_rows=1, client=cluster),
    )
    assert killed, "the run never reached its first part"
    assert np.array_equal(read(a), read(b))
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests
    assert victim not in cluster.run(os.getpid).values()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
        (["--scheduler", "tcp://127.0.0.1:9"], "Cannot reach the Dask scheduler"),
    ],
)
def test_scale_flags_fail_in_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    out = tmp_path / "m.tif"
    result = CliRunner().invoke(app, ["segment", str(SAMPLE), "-o", str(out), "-q", *flags])
    assert result.exit_code == 1, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
