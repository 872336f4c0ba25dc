"""``lcmap.methods.kmeans``: the baseline's options, features and labels."""

import numpy as np
import pytest
import torch

from lcmap.errors import InvalidOptionError
from lcmap.methods.kmeans import KMeansConfig, KMeansSegmenter, box_mean, has_cxx_compiler
from lcmap.sampling import ArraySampler


def test_box_mean_is_the_local_mean_of_a_mirrored_window() -> None:
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    out = box_mean(x, 1)
    assert out.shape == x.shape
    assert out[0, 0, 2, 2] == pytest.approx(x[0, 0, 1:4, 1:4].mean())


def test_fits_two_spectra_and_labels_them_apart() -> None:
    image = np.zeros((2, 32, 32), np.float32)
    image[:, :, 16:] = 1.0
    method = KMeansSegmenter.build(2, smooth=0, samples=500)
    method.fit(ArraySampler([image], seed=0))
    labels = method.predict_labels(torch.from_numpy(image)[None])[0].numpy()
    assert len(np.unique(labels[:, :16])) == 1 and len(np.unique(labels[:, 16:])) == 1
    assert labels[0, 0] != labels[0, 31]
    assert method.config() == {
        **KMeansConfig(num_classes=2, smooth=0, samples=500).__dict__,
        "in_channels": 2,
    }


def test_option_ranges() -> None:
    with pytest.raises(InvalidOptionError, match="smooth=101 must be from 0 to 100"):
        KMeansSegmenter.build(4, smooth=101)
    with pytest.raises(InvalidOptionError, match="num_classes=1 must be from 2"):
        KMeansSegmenter.build(1)


def test_labels_are_the_nearest_centroid_whatever_the_tile() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 4, 67, 91, generator=gen)
    method = KMeansSegmenter.build(6, smooth=0, in_channels=4)
    centroids = torch.rand(6, 4, generator=gen)
    centroids[5] = centroids[2]  # a tie: the lower id wins
    method.load_state_dict({"centroids": centroids})
    labels = method.predict_labels(image)[0]
    exact = ((image[0].double()[None] - centroids.double()[:, :, None, None]) ** 2).sum(1)
    assert torch.equal(labels, exact.argmin(0))
    assert not (labels == 5).any()
    assert torch.equal(method.predict(image).argmax(1)[0], labels)
    # The same pixels in another tile shape get the same bits, hence the same labels.
    crop = image[..., 5:40, 13:80]
    assert torch.equal(method.predict(crop), method.predict(image)[..., 5:40, 13:80])


@pytest.mark.skipif(not has_cxx_compiler(), reason="no C++ compiler")
def test_the_compiled_scoring_gives_the_eager_labels_bit_for_bit(monkeypatch) -> None:
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 4, 70, 90, generator=gen)
    method = KMeansSegmenter.build(6, smooth=2, in_channels=4)
    centroids = torch.rand(6, 8, generator=gen)
    centroids[4] = centroids[1]  # a tie: the lower id wins in both
    method.load_state_dict({"centroids": centroids})
    eager = method.predict_labels(image)
    monkeypatch.setenv("LCMAP_COMPILE", "1")
    method.prepare_mapping(1)
    assert method._compiled is not None
    assert torch.equal(method.predict_labels(image), eager)
    assert method._compiled is not None  # it did not fall back to the eager code
    crop = image[..., 9:61, 11:83]  # another tile shape; away from the crop's edges, same labels
    assert torch.equal(method.predict_labels(crop)[:, 2:-2, 2:-2], eager[:, 11:59, 13:81])
    monkeypatch.setenv("LCMAP_COMPILE", "0")
    method.prepare_mapping(10**12)
    assert method._compiled is None
