"""``lcmap.engine``: device choice and whole-array inference through the tile interface."""

import numpy as np
import pytest
import torch
from _helpers import ToySegmenter

from lcmap.engine import choose_device, scores_for_array
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
