"""``lcmap.sampling``: one draw loop for scene files and arrays."""

import numpy as np
import pytest

from lcmap.io.scene import Normalisation, ReadSpec
from lcmap.sampling import MIN_VALID_FRACTION, ArraySampler, open_sampler


def test_array_windows_avoid_nodata_and_are_reproducible() -> None:
    image = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    valid = np.zeros((64, 64), bool)
    valid[:, 40:] = True  # data in the right strip only
    batches = [ArraySampler([image], [valid], seed=5).sample(20, 16) for _ in range(2)]
    assert batches[0].image.shape == (20, 3, 16, 16)
    assert (batches[0].valid.float().mean(dim=(1, 2)) >= MIN_VALID_FRACTION).all()
    assert np.array_equal(batches[0].image.numpy(), batches[1].image.numpy())


def test_scene_windows_are_normalised_and_carry_labels(make_scene, tmp_path) -> None:
    scene = make_scene()
    spec = ReadSpec((1, 2, 3, 4), Normalisation((0.0,) * 4, (255.0,) * 4))
    with open_sampler([scene], spec, labels=[scene], seed=1) as sampler:
        assert sampler.in_channels == 4
        batch = sampler.sample(6, 32)
    assert batch.image.shape == (6, 4, 32, 32) and batch.labels is not None
    assert float(batch.image.min()) >= 0 and float(batch.image.max()) <= 1
    with pytest.raises(ValueError, match="label rasters for"):
        open_sampler([scene], spec, labels=[scene, scene]).__enter__()
