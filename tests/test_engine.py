"""``lcmap.engine``: device choice and whole-array inference through the tile interface."""

import numpy as np
import pytest
import torch
from _helpers import ToySegmenter

from lcmap.engine import _WriterThread, choose_device, scores_for_array
from lcmap.errors import LcmapError


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
