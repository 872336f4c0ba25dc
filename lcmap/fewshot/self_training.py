"""Self-training for ``lcmap finetune``: unlabelled patches labelled by the tuned model.

One round of class-balanced self-training (CBST: Zou et al., "Unsupervised domain adaptation
for semantic segmentation via class-balanced self-training", ECCV 2018): the tuned model labels
random unlabelled patches, and of the pixels it gives to each class only the most confident
``portion`` keep their label, so that a class the model finds easy cannot crowd out the rest;
the others stay unlabelled (255). A fresh network is then trained on the labelled and the
pseudo-labelled patches together (a new student, as Noisy Student: Xie et al., CVPR 2020).
The unlabelled patches may come from the scenes to be mapped, labels never read: the model then
adapts to their ground (CBST's use).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from rasterio.io import DatasetReader

from lcmap.models import ModelHeader
from lcmap.types import UNLABELLED

if TYPE_CHECKING:
    import torch

    from lcmap.methods.base import Segmenter

#: CBST's first-round portion: the most confident 20% of each class's pixels are kept.
PORTION = 0.2


def unlabelled_patches(
    srcs: Sequence[DatasetReader], base: ModelHeader, count: int, size: int, seed: int
) -> "tuple[torch.Tensor, torch.Tensor]":
    """``count`` random ``size`` px patches of ``srcs`` (mostly data), normalised as ``base``
    reads scenes: (N, C, S, S) images and (N, S, S) validity."""
    from lcmap.sampling import SceneSampler

    batch = SceneSampler(srcs, base.read_spec(), seed=seed).sample(count, size)
    return batch.image, batch.valid


def pseudo_labels(
    model: "Segmenter",
    images: "torch.Tensor",
    valid: "torch.Tensor",
    portion: float = PORTION,
    batch_size: int = 16,
) -> "torch.Tensor":
    """(N, S, S) class ids from ``model`` for ``images``; 255 where no data, and where a pixel's
    confidence is below the top ``portion`` of the pixels given the same class. The patches are
    scored as a map scores tiles (``predict_tiles``: a windowed model's fixed windows, blended),
    so a patch need not fit the model's window."""
    import torch

    probs = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size].to(model.device)
            probs.append(model.predict_tiles(chunk).float().cpu())
    confidence, labels = torch.cat(probs).max(dim=1)
    keep = torch.zeros_like(valid)
    for c in np.unique(labels[valid].numpy()).tolist():
        given = valid & (labels == c)
        threshold = float(np.quantile(confidence[given].numpy(), 1.0 - portion))
        keep |= given & (confidence >= threshold)
    return torch.where(keep, labels, torch.full_like(labels, UNLABELLED))


__all__ = ["PORTION", "pseudo_labels", "unlabelled_patches"]
