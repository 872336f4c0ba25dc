"""Scale-out (lcmap.scale): maps in parts, on Dask workers, resumed, and over many scenes.

The contract: however a map is computed (one process streaming rows, parts here, parts on a
``LocalCluster`` of worker processes, a run killed and resumed, a worker killed mid-run), it
is the same map.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from _helpers import DATA
from _tiny_vit import tiny_stego_on_naip, tiny_vit
from safetensors.torch import save_file
from typer.testing import CliRunner

from lcmap import api
from lcmap.cli import app
from lcmap.errors import InvalidOptionError, OutputPathError
from lcmap.scale import parts_folder
from lcmap.scale.parts import plan_parts
from lcmap.tiling import plan_tiles
from lcmap.workflows import fitting
from lcmap.workflows.specs import MethodSpec, RunSpec, ScaleSpec, TilingSpec

RGB = DATA / "rasterio" / "RGB.byte.tif"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "naip_2020_rgbn.tif"
needs_rgb = pytest.mark.skipif(not RGB.exists(), reason="../shared/data/rasterio absent")


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster of 2 worker processes, shared by the module's tests."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def stego_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 320 x 320 crop of the real NAIP sample and a tiny stego model fitted on it."""
    root = tmp_path_factory.mktemp("stego")
    weights = root / "tiny.safetensors"
    save_file(tiny_vit().state_dict(), str(weights))
    return tiny_stego_on_naip(root, weights, 40, 2)


def test_parts_cover_every_row_once_whatever_the_workers() -> None:
    plan = plan_tiles(1000, 777, 64, 16)
    parts = plan_parts(plan, 3)
    rows = [r for p in parts for r in range(p.first_row, p.first_row + p.rows)]
    assert rows == list(range(777))
    assert [t for p in parts for t in p.tile_rows] == list(range(plan.rows))
    # The default: about 16 Mpx a part, so a 16000 px scene with 512 px tiles makes 16 parts.
    assert len(plan_parts(plan_tiles(16000, 16000, 512, 8))) == 16
    with pytest.raises(ValueError, match="at least one tile row"):
        plan_parts(plan, 0)


@needs_rgb
def test_parts_here_give_the_byte_identical_map(tmp_path: Path) -> None:
    """Parts computed in this process and assembled through a VRT: the same COG, byte for byte,
    as the streamed one-pass map (pixels, colour table, tags, overviews)."""
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    api.segment(
        RGB,
        a,
        method=MethodSpec("kmeans", classes=5),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=128),
    )
    result = api.segment(
        RGB,
        b,
        method=MethodSpec("kmeans", classes=5),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=128),
        scale=ScaleSpec(resume=True, part_rows=2),
    )
    assert result.parts_computed == 3 and result.parts_reused == 0
    assert a.read_bytes() == b.read_bytes()
    assert not parts_folder(b).exists()  # removed once the map is published


@needs_rgb
def test_local_cluster_gives_the_in_process_map_for_kmeans(tmp_path: Path, cluster: Any) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    one = api.segment(
        RGB,
        a,
        method=MethodSpec("kmeans", classes=5),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=64),
    )
    two = api.segment(
        RGB,
        b,
        method=MethodSpec("kmeans", classes=5),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=64),
        scale=ScaleSpec(part_rows=1, client=cluster),
    )
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


def test_a_killed_run_resumes_to_the_byte_identical_map(
    tmp_path: Path, stego_model: tuple[Path, Path]
) -> None:
    """SIGKILL the CLI once some parts are finished; ``--resume`` reuses them and the map is
    byte-identical to an uninterrupted run."""
    crop, model = stego_model
    whole, out = tmp_path / "whole.tif", tmp_path / "out.tif"
    args = [
        "segment",
        str(crop),
        "--model",
        str(model),
        "--tile",
        "32",
        "--part-rows",
        "1",
        "--device",
        "cpu",
        "--resume",
        "-q",
    ]
    api.segment(
        crop,
        whole,
        model=model,
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=32),
        scale=ScaleSpec(resume=True, part_rows=1),
    )
    folder = parts_folder(out)
    proc = subprocess.Popen([sys.executable, "-m", "lcmap", *args, "-o", str(out)])
    deadline = time.monotonic() + 120
    while len(list(folder.glob("part-*.json"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and folder.is_dir()
    finished = len(list(folder.glob("part-*.json")))
    result = api.segment(
        crop,
        out,
        model=model,
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=32),
        scale=ScaleSpec(resume=True, part_rows=1),
    )
    assert result.parts_reused >= finished >= 3
    assert result.parts_computed == 10 - result.parts_reused < 10
    assert out.read_bytes() == whole.read_bytes()


def test_a_resumed_run_does_not_fit_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted run that fitted its method kept the model with its parts: resuming
    reuses both, and the map is the uninterrupted run's."""
    out, whole = tmp_path / "out.tif", tmp_path / "whole.tif"
    how: dict[str, Any] = {
        "method": MethodSpec("kmeans", classes=4),
        "scale": ScaleSpec(resume=True, part_rows=1),
        "tiling": TilingSpec(tile=128),
    }
    api.segment(SAMPLE, whole, run=RunSpec(device="cpu"), **how)

    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.segment(SAMPLE, out, run=RunSpec(device="cpu", progress=interrupt), **how)
    assert not out.exists() and (parts_folder(out) / "model.lcmap").is_file()

    def no_fit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "fit_method", no_fit)
    result = api.segment(SAMPLE, out, run=RunSpec(device="cpu"), **how)
    assert result.parts_reused == 2 and result.provenance["model"] is None
    assert out.read_bytes() == whole.read_bytes()


def test_a_different_request_starts_the_parts_again(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    folder = parts_folder(out)
    folder.mkdir()
    (folder / "run.json").write_text('{"scene": "another"}')
    (folder / "part-00000.json").write_text("{}")
    result = api.segment(
        SAMPLE,
        out,
        method=MethodSpec("kmeans", classes=4),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=256),
        scale=ScaleSpec(resume=True),
    )
    assert result.parts_reused == 0 and out.exists() and not folder.exists()


def test_a_foreign_folder_in_the_parts_place_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    parts_folder(out).mkdir()
    (parts_folder(out) / "mine.txt").write_text("not lcmap's")
    with pytest.raises(OutputPathError, match="not made by lcmap"):
        api.segment(
            SAMPLE, out, method="kmeans", run=RunSpec(device="cpu"), scale=ScaleSpec(resume=True)
        )
    assert (parts_folder(out) / "mine.txt").exists() and not out.exists()


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


def test_api_refuses_bad_part_rows(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="part_rows="):
        api.segment(
            SAMPLE, tmp_path / "m.tif", method="kmeans", scale=ScaleSpec(resume=True, part_rows=0)
        )


RGB_PARTS = [DATA / "rasterio" / f"rgb{i}.tif" for i in range(1, 5)]
needs_parts = pytest.mark.skipif(not RGB_PARTS[0].exists(), reason="rgb1-4.tif absent")


def overlap(a: Path, b: Path) -> tuple[np.ndarray, np.ndarray]:
    """The labels of two maps on the ground they share (same grid, whole-pixel offsets)."""
    from rasterio.windows import from_bounds

    with rasterio.open(a) as sa, rasterio.open(b) as sb:
        left, right = max(sa.bounds.left, sb.bounds.left), min(sa.bounds.right, sb.bounds.right)
        bottom, top = max(sa.bounds.bottom, sb.bounds.bottom), min(sa.bounds.top, sb.bounds.top)
        wa = from_bounds(left, bottom, right, top, sa.transform).round_offsets().round_lengths()
        wb = from_bounds(left, bottom, right, top, sb.transform).round_offsets().round_lengths()
        return sa.read(1, window=wa), sb.read(1, window=wb)


@needs_parts
def test_many_scenes_one_model_one_meaning(tmp_path: Path) -> None:
    """rgb1-4 are overlapping cuts of one scene: where two overlap, their maps agree.

    The overlaps are the scenes' edge rows and columns, where each map's local features see
    its own mirrored border, hence agreement short of 1."""
    result = CliRunner().invoke(
        app,
        [
            "segment",
            *map(str, RGB_PARTS),
            "-o",
            f"{tmp_path}/maps/",
            "-m",
            "kmeans",
            "-k",
            "4",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    maps = [tmp_path / "maps" / f"rgb{i}.tif" for i in range(1, 5)]
    shas = {rasterio.open(m).tags()["LCMAP_MODEL_SHA256"] for m in maps}
    assert len(shas) == 1 and (tmp_path / "maps" / "model.lcmap").is_file()
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3)]:
        la, lb = overlap(maps[a], maps[b])
        valid = (la != 255) & (lb != 255)
        assert valid.sum() > 100 and (la[valid] == lb[valid]).mean() >= 0.85, (a, b)
    with rasterio.open(tmp_path / "maps" / "mosaic.vrt") as mosaic:
        assert mosaic.crs == rasterio.open(maps[0]).crs
        assert mosaic.colormap(1)[0] == rasterio.open(maps[0]).colormap(1)[0]
        assert set(np.unique(mosaic.read(1))) <= {0, 1, 2, 3, 255}


@needs_parts
def test_a_failed_scene_is_named_and_the_others_finish(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a raster")
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# scenes\n{RGB_PARTS[0]}\n{bad}\n{RGB_PARTS[1]}\n")
    out = tmp_path / "maps"
    result = CliRunner().invoke(
        app, ["segment", f"@{listing}", "-o", f"{out}/", "-m", "kmeans", "-k", "3", "-q"]
    )
    assert result.exit_code == 1
    assert "broken.tif failed" in result.output and "1 of 3 scenes failed" in result.output
    assert (out / "rgb1.tif").is_file() and (out / "rgb2.tif").is_file()
    assert not (out / "broken.tif").exists()


@needs_parts
def test_two_scenes_with_one_name_are_refused_before_any_work(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "rgb1.tif"
    twin.write_bytes(RGB_PARTS[0].read_bytes())
    result = CliRunner().invoke(
        app, ["segment", str(RGB_PARTS[0]), str(twin), "-o", f"{tmp_path}/maps/", "-q"]
    )
    assert result.exit_code == 1 and "would both be mapped to" in result.output
    assert not list((tmp_path / "maps").glob("*"))
