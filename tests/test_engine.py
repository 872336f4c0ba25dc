"""``lcmap.engine``: device choice, whole-array inference, the mapping loop's threads, batch
size and busy share."""

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from _helpers import ToySegmenter

from lcmap import api
from lcmap.engine import (
    MAX_AUTO_BATCH,
    _WriterThread,
    batch_size_for,
    choose_device,
    scores_for_array,
)
from lcmap.errors import LcmapError
from lcmap.io.scene import ReadSpec
from lcmap.workflows.specs import MethodSpec, RunSpec, TilingSpec


def test_unknown_devices_are_one_clear_error() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(LcmapError, match="Unknown device 'meta'"):
        choose_device("meta")


def test_whole_array_inference_slides_a_windowed_method() -> None:
    image = np.random.default_rng(0).random((1, 37, 45)).astype(np.float32)
    plain = scores_for_array(ToySegmenter(4), image)
    windowed = ToySegmenter(4, windowed=True)  # asserts it only ever sees 16 px windows
    slid = scores_for_array(windowed, image)
    assert slid.shape == plain.shape == (4, 37, 45)
    np.testing.assert_array_equal(slid.argmax(0), plain.argmax(0))
    assert windowed.calls >= 1


class _Rows:
    """A row writer that keeps what it is given and fails on ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.rows: list[int] = []
        self.fail_at = fail_at

    def write_rows(self, row: int, labels: np.ndarray) -> None:
        if row == self.fail_at:
            raise OSError("No space left on device")
        self.rows.append(row)


def test_writer_thread_writes_every_row_in_order_and_counts_classes() -> None:
    rows = _Rows()
    sink = _WriterThread(rows, num_classes=3, nodata=255, depth=2)
    for r in range(0, 40, 4):
        sink.put(r, np.array([[0, 1, 2, 255]], dtype=np.uint8))
    sink.close()
    assert rows.rows == list(range(0, 40, 4))
    assert sink.counts.tolist() == [10, 10, 10, 10]


def test_a_failed_write_is_raised_in_the_main_thread() -> None:
    sink = _WriterThread(_Rows(fail_at=8), num_classes=2, nodata=255, depth=1)
    with pytest.raises(OSError, match="No space left"):
        for r in range(0, 400, 4):
            sink.put(r, np.zeros((4, 4), dtype=np.uint8))
        sink.close()


def test_batch_size_fits_device_memory_and_the_host_read_ahead() -> None:
    mib = 2**20
    # 70 % of 1000 MiB free, less 100 MiB fixed, at 50 MiB a window: 12 windows.
    assert batch_size_for(1000 * mib, 100 * mib, 50 * mib, tile_bytes=mib, tiles=1000) == 12
    # Two batches of 64 MiB tiles read ahead within 1 GiB: 8 windows, however large the GPU.
    assert batch_size_for(10**12, 0, mib, tile_bytes=64 * mib, tiles=1000) == 8
    assert batch_size_for(10**12, 0, 1, tile_bytes=1, tiles=10**6) == MAX_AUTO_BATCH
    assert batch_size_for(10**12, 0, 1, tile_bytes=1, tiles=3) == 3  # no more than the tiles
    assert batch_size_for(mib, 10 * mib, mib, tile_bytes=mib, tiles=10) == 1  # never below 1


def _map(scene: Path, out: Path) -> np.ndarray:
    api.segment(
        scene,
        out,
        method=MethodSpec("kmeans", classes=4),
        tiling=TilingSpec(tile=64),
        run=RunSpec(device="cpu", seed=0, batch_size=3),
    )
    with rasterio.open(out) as src:
        return src.read(1)


def test_several_reader_threads_give_the_same_map(make_scene, tmp_path, monkeypatch) -> None:
    scene = make_scene(width=300, height=230)
    one = _map(scene, tmp_path / "one.tif")
    monkeypatch.setenv("LCMAP_READ_THREADS", "3")
    three = _map(scene, tmp_path / "three.tif")
    np.testing.assert_array_equal(one, three)


def test_a_failed_read_on_any_reader_thread_is_raised_and_leaves_nothing(
    make_scene, tmp_path, monkeypatch
) -> None:
    scene = make_scene(width=300, height=230)
    real, calls = ReadSpec.read, []

    def failing(self: ReadSpec, src: Any, window: Any) -> Any:
        calls.append(window)
        if len(calls) == 7:
            raise OSError("simulated read failure")
        return real(self, src, window)

    monkeypatch.setattr(ReadSpec, "read", failing)
    monkeypatch.setenv("LCMAP_READ_THREADS", "3")
    with pytest.raises(Exception, match="simulated read failure"):
        _map(scene, tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_verbose_mapping_logs_how_busy_the_model_kept_the_device(
    make_scene, tmp_path, caplog
) -> None:
    scene = make_scene(width=300, height=230)
    with caplog.at_level(logging.INFO, logger="lcmap.engine"):
        _map(scene, tmp_path / "out.tif")
    found = [r.getMessage() for r in caplog.records if "model busy" in r.getMessage()]
    assert len(found) == 1, found
    share = float(re.match(r"model busy (\d+)%", found[0]).group(1))  # type: ignore[union-attr]
    assert 0 < share <= 100
    assert "batches of 3" in found[0] and "readers: 1" in found[0]


@pytest.mark.gpu
def test_on_cuda_the_batch_size_is_measured_and_maps_as_a_fixed_one(
    make_scene, tmp_path, caplog
) -> None:
    scene = make_scene(width=700, height=500)
    model = tmp_path / "km.lcmap"
    with caplog.at_level(logging.INFO, logger="lcmap.engine"):
        api.segment(
            scene,
            tmp_path / "auto.tif",
            save_model=model,
            method=MethodSpec("kmeans", classes=4),
            run=RunSpec(device="cuda", seed=0),
            tiling=TilingSpec(tile=128),
        )
    assert any(r.getMessage().startswith("batch size ") for r in caplog.records)
    api.segment(
        scene,
        tmp_path / "one.tif",
        model=model,
        run=RunSpec(device="cuda", batch_size=1),
        tiling=TilingSpec(tile=128),
    )
    with rasterio.open(tmp_path / "auto.tif") as a, rasterio.open(tmp_path / "one.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
