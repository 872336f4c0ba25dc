"""Supervised training of a segmentation network on labelled patches held in memory.

One loop for every tuned network (``cas_finetuned``, ``encoder_finetuned``): class-weighted
cross-entropy (inverse frequency, as Ghandali et al. weights its classes), label 255 ignored, AdamW,
patches in a seeded random order epoch by epoch, augmentation by the caller.
"""

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.methods.base import LabelledPatches, ProgressFn, training_labels
from lcmap.methods.configs import FinetuneOptions
from lcmap.types import UNLABELLED, show_status

log = logging.getLogger(__name__)

IGNORE_INDEX = UNLABELLED


def class_weights(labels: Tensor, num_classes: int, max_ratio: float = 10.0) -> Tensor:
    """Inverse-frequency class weights from labelled pixels (255 ignored).

    ``w_c = n / (K_present * n_c)``, clipped to ``max_ratio`` times the smallest weight so that
    a class with a few pixels does not dominate; classes without pixels get weight 0.

    Args:
        labels: integer labels of any shape.
        num_classes: K.
        max_ratio: largest allowed ratio between two weights.

    Returns:
        (K,) float32 weights.
    """
    flat = labels.reshape(-1)
    flat = flat[(flat >= 0) & (flat < num_classes)]
    counts = torch.bincount(flat, minlength=num_classes).double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
        floor = weights[present].min()
        weights[present] = weights[present].clamp(max=float(floor) * max_ratio)
    return weights.float()


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train: ``steps`` optimiser steps, or ``epochs`` passes over the
    patches when given; ``batch_size`` patches a step; AdamW's ``lr`` and ``weight_decay``;
    ``class_weighting`` ``inverse`` or ``none``; ``seed`` for the order and augmentation."""

    batch_size: int
    steps: int
    epochs: int | None
    lr: float
    weight_decay: float
    class_weighting: str
    seed: int

    @classmethod
    def of(cls, options: FinetuneOptions, lr: float) -> "Schedule":
        """The schedule of a few-shot network's options, at learning rate ``lr``."""
        o = options
        return cls(o.batch_size, o.steps, o.epochs, lr, o.weight_decay, o.class_weighting, o.seed)


def train_classifier(
    logits_of: Callable[[Tensor], Tensor],
    params: Iterable[torch.nn.Parameter],
    train_mode: Callable[[bool], object],
    patches: LabelledPatches,
    num_classes: int,
    schedule: Schedule,
    augment: Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]],
    device: torch.device,
    progress: ProgressFn | None = None,
) -> list[float]:
    """Train ``params`` so that ``logits_of(x)`` predicts the labels; returns every step's loss.

    Args:
        logits_of: (B, C, S, S) -> (B, K, S, S) class logits of the network in training.
        params: the parameters to train (a frozen encoder's are left out).
        train_mode: ``train_mode(True)`` puts the network in training mode (a frozen part may
            stay in eval), ``train_mode(False)`` back in eval mode when done (``net.train``).
        patches: the patches and their labels.
        num_classes: K.
        schedule: steps, batch, optimiser and seed.
        augment: (x, y, generator) -> augmented batch (crops, symmetries, padding).
        device: where to train.
        progress: (done, total) per step.

    Raises:
        InvalidSceneError: no labelled pixel, or a label outside 0..K-1 (and not 255).
    """
    images = patches.image
    labels, labelled = training_labels(patches, num_classes)
    weight = (
        class_weights(labels, num_classes)
        if schedule.class_weighting == "inverse"
        else torch.ones(num_classes)
    ).to(device)
    n = len(images)
    per_epoch = math.ceil(n / schedule.batch_size)
    steps = schedule.epochs * per_epoch if schedule.epochs is not None else schedule.steps
    log.info(
        "fine-tuning on %d patches (%d labelled pixels), %d steps, class weights %s",
        n,
        labelled,
        steps,
        [round(float(w), 3) for w in weight],
    )
    gen = torch.Generator().manual_seed(schedule.seed)
    opt = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    train_mode(True)
    losses: list[float] = []
    order = torch.randperm(n, generator=gen)
    for step in range(steps):
        pos = (step % per_epoch) * schedule.batch_size
        if step and pos == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[pos : pos + schedule.batch_size]
        x, y = augment(images[idx].float(), labels[idx], gen)
        x, y = x.to(device), y.to(device)
        if bool((y != IGNORE_INDEX).any()):  # a crop may hold no labelled pixel
            logits = logits_of(x)
            loss = F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(float(loss.item()))
        if losses and (step % 50 == 0 or step == steps - 1):
            log.info("fine-tuning step %d/%d: cross-entropy %.4f", step + 1, steps, losses[-1])
        if progress is not None:
            progress(step + 1, steps)
            if losses and step % 10 == 0:
                show_status(progress, f"cross-entropy {losses[-1]:.4f}")
    train_mode(False)
    return losses
