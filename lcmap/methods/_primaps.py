"""PriMaPs-EM: class prototypes fitted to principal mask proposals (Hahn et al., 2024).

"Boosting Unsupervised Semantic Segmentation with Principal Mask Proposals" (Hahn, Araslanov,
Schaub-Meyer, Roth; TMLR 2024). Two parts, both on the frozen backbone's unit patch features:

1. **Principal mask proposals** (:func:`principal_masks`), per window: the first principal
   direction of the window's features not yet in a mask; the feature nearest to it is the
   mask's anchor; the mask is every free feature whose cosine to the anchor is at least
   ``threshold`` times the highest (the anchor's own, 1). Repeat on what is left until
   ``stop`` of the window is covered. Each mask is one "thing" of the window as its features
   see it, without saying which class.
2. **EM on class prototypes** (:func:`fit_prototypes`), started from cosine k-means: the
   E-step labels each mask with the class the *momentum* prototypes predict most often inside
   it (the mask's mode), the M-step takes a gradient step of the *running* prototypes on a
   focal-weighted cross-entropy to those pseudo labels, and every ``ema_every`` steps the
   momentum prototypes move towards the running ones (decay ``ema_decay``). The momentum
   prototypes are the result. The masks make the labels agree within a region the features
   call one thing, which k-means, assigning each patch alone, cannot.

Choices where lcmap departs from the paper's code, each for a stated reason:

- Masks are made and used on the patch grid, without the paper's median filter and dense CRF:
  lcmap's prototypes act on patch features (their scores are upsampled to pixels when
  mapping), so pixel-accurate pseudo labels would be averaged back to patches anyway, and a
  dense CRF is a compiled dependency lcmap does not have.
- The anchor is the free feature farthest along the principal direction in either sense (the
  paper takes the largest projection, whose sense is the SVD's arbitrary sign): the same
  choice up to that sign, made deterministic.
- Running logits are ``s * cos(f, prototype)`` with one learnt scale ``s`` for all classes
  (the paper's weight-normalised 1x1 convolution learns one scale per class): with one scale
  the map is the prototypes' cosine argmax, the same rule as the k-means it refines.
- No augmented student view: the features are computed once per window and kept (the paper
  photometrically augments the student's image, one more backbone pass per step; on a CPU
  the backbone is the whole cost).
- Patches are weighted by the window's blending weight (Hann) in the loss, as lcmap's k-means
  draws its pixels: a ViT's features near a window's border differ from those at its centre.

Defaults are the paper's: threshold 0.4, stop at 95 % coverage, focal gamma 2, Adam at 5e-3,
batches of 32 windows, EMA decay 0.98 every 10 steps, 7000 steps; more steps kept improving
the map on held-out scenes up to the paper's 7000, and the threshold mattered little
(``benchmarks/README.md``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def principal_masks(
    feats: Tensor,
    threshold: float = 0.4,
    stop: float = 0.95,
    max_masks: int = 64,
    valid: Tensor | None = None,
) -> Tensor:
    """Principal mask proposals of one window.

    Args:
        feats: (D, h, w) unit feature vectors (one per patch).
        valid: (h, w) bool, the patches that may join a mask (None = all): nodata stays out.
        threshold: cosine to the mask's anchor, relative to the highest, a patch needs to join.
        stop: stop once this fraction of the patches is in a mask.
        max_masks: at most this many masks.

    Returns:
        (h, w) int64 mask ids: 1, 2, ... in the order found; 0 for patches in no mask.
    """
    d, h, w = feats.shape
    f = feats.reshape(d, h * w).T.float()  # (P, D)
    ids = torch.zeros(h * w, dtype=torch.int64)
    free = torch.ones(h * w, dtype=torch.bool) if valid is None else valid.flatten().clone()
    usable = int(free.sum())
    for m in range(1, max_masks + 1):
        if int(free.sum()) <= (1 - stop) * usable or not bool(free.any()):
            break
        x = f[free]
        if x.shape[0] > 1:
            proj = x @ _first_component(x - x.mean(0))
            anchor = x[int(proj.abs().argmax())]
        else:
            anchor = x[0]
        sim = f @ anchor
        sim[~free] = -2.0
        take = free & (sim >= threshold * float(sim.max()))
        ids[take] = m
        free &= ~take
    return ids.reshape(h, w)


def _first_component(x: Tensor, iterations: int = 20) -> Tensor:
    """The first principal direction of centred rows ``x`` (P, D), by power iteration from the
    longest row: a few matrix-vector products where an SVD of every mask's remainder made the
    proposals cost more than the backbone (the paper uses a randomised low-rank PCA)."""
    v = x[int(x.norm(dim=1).argmax())]
    for _ in range(iterations):
        v = x.T @ (x @ v)
        norm = v.norm()
        if float(norm) == 0:
            break
        v = v / norm
    return v


def _mask_modes(pred: Tensor, masks: Tensor, k: int) -> Tensor:
    """(B, P) pseudo labels: each mask's most frequent class in ``pred``; -1 outside masks."""
    b = pred.shape[0]
    n_masks = int(masks.max()) + 1
    slot = torch.arange(b)[:, None] * n_masks + masks  # (B, P) one slot per (window, mask)
    counts = torch.bincount((slot * k + pred).flatten(), minlength=b * n_masks * k)
    pseudo = counts.reshape(b * n_masks, k).argmax(1)[slot]
    return torch.where(masks > 0, pseudo, torch.full_like(pseudo, -1))


@dataclass(frozen=True)
class EmSchedule:
    """The PriMaPs-EM optimisation (see the module docstring): ``steps`` Adam steps at ``lr`` on
    batches of ``batch`` windows, the teacher prototypes moved towards the student's every
    ``ema_every`` steps with momentum ``ema_decay``, focal class weights of power
    ``focal_gamma``. The defaults are the paper's."""

    steps: int = 300
    batch: int = 32
    lr: float = 5e-3
    ema_decay: float = 0.98
    ema_every: int = 10
    focal_gamma: float = 2.0


def fit_prototypes(
    feats: Tensor,
    masks: Tensor,
    init: Tensor,
    weight: Tensor | None = None,
    schedule: EmSchedule = EmSchedule(),
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """PriMaPs-EM: the momentum class prototypes after ``steps`` EM steps.

    Args:
        feats: (N, D, h, w) unit patch features of N windows.
        masks: (N, h, w) int64 mask ids of :func:`principal_masks` (0 = no mask).
        init: (K, D) starting prototypes (cosine k-means centroids).
        weight: (h, w) weight of each patch position in the loss (None = all 1).
        schedule: the EM steps, batch, learning rate, momentum and focal power.
        generator: CPU generator for the batches.
        progress: called with the number of steps done, every 50 steps and at the end.

    Returns:
        (K, D) unit prototypes.
    """
    n, d, h, w = feats.shape
    k = init.shape[0]
    steps, batch, lr = schedule.steps, schedule.batch, schedule.lr
    ema_decay, ema_every, focal_gamma = schedule.ema_decay, schedule.ema_every, schedule.focal_gamma
    # One contiguous float copy; batches are slices of it (views, no gather: on a CPU the
    # step is memory-bound), taken in a new random order each pass over the windows.
    flat = feats.float().permute(0, 2, 3, 1).reshape(n, h * w, d).contiguous()
    mflat = masks.reshape(n, h * w)
    pw = (weight if weight is not None else torch.ones(h, w)).reshape(1, h * w).float()
    teacher = F.normalize(init.float(), dim=1)
    proto = torch.nn.Parameter(teacher.clone())
    scale = torch.nn.Parameter(torch.ones(()))
    opt = torch.optim.Adam([proto, scale], lr=lr)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    starts = list(range(0, n, batch))
    order: list[int] = []
    for step in range(1, steps + 1):
        if not order:
            order = [starts[i] for i in torch.randperm(len(starts), generator=gen).tolist()]
        first = order.pop()
        f, m = flat[first : first + batch], mflat[first : first + batch]
        with torch.no_grad():
            pseudo = _mask_modes((f @ teacher.T).argmax(-1), m, k)
        logits = scale * (f @ F.normalize(proto, dim=1).T)  # (B, P, K)
        with torch.no_grad():  # focal class weights from the mean confidence per class
            conf = logits.softmax(-1).mean((0, 1))
            class_w = (1 - conf) ** focal_gamma
        ce = F.cross_entropy(
            logits.reshape(-1, k),
            pseudo.flatten().clamp_min(0),
            weight=class_w,
            reduction="none",
        ).reshape(pseudo.shape)
        valid = (pseudo >= 0).float() * pw
        loss = (ce * valid).sum() / valid.sum().clamp_min(1e-6)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if step % ema_every == 0:
            with torch.no_grad():
                mixed = ema_decay * teacher + (1 - ema_decay) * F.normalize(proto, dim=1)
                teacher = F.normalize(mixed, dim=1)
        if progress is not None and (step % 50 == 0 or step == steps):
            progress(step)
    return teacher
