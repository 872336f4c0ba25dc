"""``lcmap.fewshot.self_training``: class-balanced pseudo-labels (CBST's portion per class)."""

import numpy as np
import torch

from lcmap.fewshot.self_training import pseudo_labels
from lcmap.methods import get_method


class _Fixed:
    """A stand-in model whose class probabilities are given."""

    device = torch.device("cpu")

    def __init__(self, probs: torch.Tensor) -> None:
        self.probs = probs

    def predict_tiles(self, batch: torch.Tensor) -> torch.Tensor:
        return self.probs[: len(batch)]


def _probs(classes: np.ndarray, confidence: np.ndarray, k: int = 3) -> torch.Tensor:
    """(1, K, H, W): ``confidence`` for each pixel's class, the rest shared by the others."""
    probs = np.repeat(((1 - confidence) / (k - 1))[None], k, axis=0)
    for c in range(k):
        probs[c][classes == c] = confidence[classes == c]
    return torch.from_numpy(probs[None].astype(np.float32))


def test_each_class_keeps_its_own_most_confident_fifth():
    # 50 pixels of class 0 (confident), 40 of class 1 (all less sure than any of class 0),
    # 10 of class 2: a global threshold would keep class 0 alone.
    classes = np.array([0] * 50 + [1] * 40 + [2] * 10).reshape(10, 10)
    confidence = np.concatenate([np.linspace(0.60, 0.99, 50), np.linspace(0.40, 0.49, 40),
                                 np.linspace(0.50, 0.59, 10)]).reshape(10, 10)  # fmt: skip
    valid = torch.ones(1, 10, 10, dtype=torch.bool)
    labels = pseudo_labels(_Fixed(_probs(classes, confidence)), torch.zeros(1, 3, 10, 10), valid)
    kept = labels[0].numpy()
    assert [int((kept == c).sum()) for c in range(3)] == [10, 8, 2]
    for c in range(3):  # the kept ones are the most confident of their class
        given = confidence[classes == c]
        assert np.all(confidence[kept == c] >= np.sort(given)[-int((kept == c).sum())])
    assert set(np.unique(kept)) == {0, 1, 2, 255}


def test_pixels_without_data_get_no_pseudo_label():
    classes = np.zeros((8, 8), dtype=int)
    confidence = np.full((8, 8), 0.9)
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[0, :, :4] = False
    labels = pseudo_labels(_Fixed(_probs(classes, confidence)), torch.zeros(1, 3, 8, 8), valid)
    assert bool((labels[0, :, :4] == 255).all())
    assert int((labels[0, :, 4:] == 0).sum()) == 32  # ties at the threshold are all kept


def test_a_vit_model_labels_patches_that_do_not_fit_its_window():
    # DINOv2's ViT takes 224 px windows (a multiple of its 14 px patches); finetune's patches
    # are 128 px: they are scored as a map scores tiles, not passed to the ViT as they are.
    torch.manual_seed(0)
    model = get_method("encoder_finetuned", num_classes=3, encoder="dinov2-vits14",
                       in_channels=3, seed=0)  # fmt: skip
    model.net.eval()
    images = torch.rand(2, 3, 128, 128)
    valid = torch.ones(2, 128, 128, dtype=torch.bool)
    labels = pseudo_labels(model, images, valid)
    assert labels.shape == (2, 128, 128)
    with torch.no_grad():
        best = model.predict_tiles(images).argmax(dim=1)
    kept = labels != 255
    assert kept.float().mean() >= 0.15 and torch.equal(labels[kept], best[kept])
