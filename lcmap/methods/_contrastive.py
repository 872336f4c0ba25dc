"""Contrastive learning pieces: the NT-Xent loss, augmented views that remember where their
pixels came from, and pixel pairs between two views of one window.

Views (Ghandali et al., "Positive and negative pair generation"): a random resized crop (10-100% of
the window's area down to ``min_scale``; aspect 3/4-4/3) resized back to the window's size; one
of the 8 symmetries of the square (aerial and satellite scenes have no up); a Gaussian blur
(half the views, sigma 0.1-2 px, as SimCLR); brightness and contrast (x * c + b per view);
simulated illumination (a smooth multiplicative ramp across the view, 0.8-1.2 end to end: a sun
angle or haze gradient); random erasing of one rectangle (2-20% of the view, as torchvision's
RandomErasing). With ``colour_jitter`` s > 0 (off by default), each view's bands are also
jittered one by one before that: with probability 0.8 a gain in 1 +- s and an offset in +- s
(normalised units) per band, and with probability 0.2 every band replaced by the bands' mean.
That is SimCLR's colour distortion (Chen et al. 2020, colour jitter p = 0.8 and random
grayscale p = 0.2; their Fig. 6 shows that without it the task is solved by matching the two
views' colour histograms) carried over to any number of bands. The geometric part is kept as a
sampling grid, so a point of the window can be found in each view (:func:`view_points`); the
dense loss uses that to pair pixels.

Dense contrast: PixContrast, the pixel-level contrastive baseline of PixPro (Xie et al.,
"Propagate Yourself", CVPR 2021): two pixels of different views are a positive pair when they
come from the same place of the window; every other sampled pixel of the batch is a negative.
Here ``points`` places are drawn uniformly in the overlap of the two crops and their features
are bilinearly sampled in each view (PixPro thresholds the distance between feature cells
instead; sampling exact points is the same idea without a threshold to tune). As DenseCL (Wang
et al., CVPR 2021) does, the dense loss is added to the global one with a weight.

Without negatives: SimSiam (Chen and He, "Exploring simple Siamese representation learning",
CVPR 2021) makes each view's projection, passed through a small predictor, chase the other
view's projection under a stop-gradient; no negative is needed and its accuracy hardly moves
with the batch size (their Table 2). Seed 004's outlook asks for a method "that does not rely on
negative samples", because its batches of 8 and 16 give NT-Xent 14 or 30 negatives where
SimCLR's reference needs hundreds. VICReg (Bardes et al. 2022), the other candidate, was not
taken: it estimates a D x D covariance from the batch, of rank at most N - 1, so at N = 16 and
D = 2048 its covariance term cannot reach 0 while every dimension keeps unit variance, and the
two terms pull against each other.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: The augmentations, as the model file records them.
AUGMENTATIONS = {
    "random_resized_crop": {"scale": "min_scale..1", "ratio": [0.75, 1.3333]},
    "dihedral": "one of the 8 symmetries of the square",
    "gaussian_blur": {"p": 0.5, "sigma": [0.1, 2.0]},
    "brightness_contrast": {"brightness": 0.2, "contrast": [0.8, 1.2]},
    "illumination_ramp": [0.8, 1.2],
    "random_erasing": {"p": 0.5, "area": [0.02, 0.2]},
}


def augmentations(colour_jitter: float = 0.0) -> dict[str, object]:
    """The augmentations of :func:`make_views`, as the model file records them."""
    if not colour_jitter:
        return dict(AUGMENTATIONS)
    jitter = {"p": 0.8, "gain": [1 - colour_jitter, 1 + colour_jitter],
              "offset": [-colour_jitter, colour_jitter], "band_mean_p": 0.2}  # fmt: skip
    return {**AUGMENTATIONS, "colour_jitter": jitter}


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy over N positive pairs.

    For each of the 2N projections, the positive is its pair and the negatives are the other
    2N - 2 (never itself): ``l(i, j) = -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t))`` with
    cosine similarities ``s``, averaged over all 2N anchors.

    Args:
        z1, z2: (N, D) projections of the two views; row i of each is a positive pair.
        temperature: t > 0.
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    sims = z @ z.T / temperature
    sims.fill_diagonal_(-math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sims, target)


def simsiam(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> tuple[Tensor, dict[str, float]]:
    """SimSiam's symmetrised loss of N pairs, and how spread the projections are.

    ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2`` with ``D`` the negative cosine similarity and
    ``sg`` the stop-gradient: each view's prediction ``p`` chases the other view's projection
    ``z``, which receives no gradient through that term. ``spread`` is the per-dimension
    standard deviation of the unit projections times sqrt(D): about 1 for projections spread
    over the sphere, 0 when they collapsed to one point (SimSiam's own collapse monitor).

    Args:
        p1, p2: (N, D) predictions of the two views; z1, z2: (N, D) their projections.
    """
    loss = -(F.cosine_similarity(p1.float(), z2.detach().float(), dim=1).mean()
             + F.cosine_similarity(p2.float(), z1.detach().float(), dim=1).mean()) / 2  # fmt: skip
    unit = F.normalize(z1.detach().float(), dim=1)
    spread = float(unit.std(dim=0).mean()) * math.sqrt(unit.shape[1])
    return loss, {"spread": spread}


def _dihedral_grid(grid: Tensor, k: int, flip: bool) -> Tensor:
    """The sampling grid of a view rotated by ``k`` quarter turns (as ``torch.rot90`` on the
    image axes) and then flipped left-right, as a grid: (S, S, 2) -> (S, S, 2)."""
    g = torch.rot90(grid, k, dims=(0, 1))
    return torch.flip(g, dims=(1,)) if flip else g


def random_view_grid(size: int, min_scale: float, gen: torch.Generator) -> Tensor:
    """(S, S, 2) sampling grid (x, y in [-1, 1] of the window) of one random resized crop,
    rotated and flipped: ``grid_sample(window, grid)`` is the view."""
    area = float(torch.empty(1).uniform_(min_scale, 1.0, generator=gen))
    ratio = math.exp(
        float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3), generator=gen))
    )
    w = min(1.0, math.sqrt(area * ratio))
    h = min(1.0, math.sqrt(area / ratio))
    x0 = float(torch.rand(1, generator=gen)) * (1 - w)
    y0 = float(torch.rand(1, generator=gen)) * (1 - h)
    # Pixel centres of the view in window coordinates, align_corners=False convention.
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    xs = (x0 + t * w) * 2 - 1
    ys = (y0 + t * h) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    return _dihedral_grid(grid, k, flip)


def band_jitter(view: Tensor, strength: float, gen: torch.Generator) -> Tensor:
    """SimCLR's colour distortion for any number of bands, on one (C, S, S) view: with
    probability 0.8 each band gets its own gain in 1 +- ``strength`` and offset in +-
    ``strength``; then with probability 0.2 every band becomes the bands' mean (grayscale)."""
    c = view.shape[0]
    if float(torch.rand(1, generator=gen)) < 0.8:
        gain = torch.empty(c, 1, 1).uniform_(1 - strength, 1 + strength, generator=gen)
        offset = torch.empty(c, 1, 1).uniform_(-strength, strength, generator=gen)
        view = view * gain.to(view.device) + offset.to(view.device)
    if float(torch.rand(1, generator=gen)) < 0.2:
        view = view.mean(dim=0, keepdim=True).expand_as(view).contiguous()
    return view


def photometric(view: Tensor, gen: torch.Generator, colour_jitter: float = 0.0) -> Tensor:
    """Blur, per-band jitter (``colour_jitter`` > 0), brightness/contrast, illumination ramp
    and erasing of one (C, S, S) view."""
    s = view.shape[-1]
    if float(torch.rand(1, generator=gen)) < 0.5:
        sigma = float(torch.empty(1).uniform_(0.1, 2.0, generator=gen))
        radius = max(1, math.ceil(2 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).to(view.device)
        v = view[:, None]
        pad = min(radius, s - 1)
        v = F.pad(v, (pad, pad, pad, pad), mode="reflect")
        if pad < radius:
            kernel = kernel[radius - pad : radius + pad + 1]
            kernel = kernel / kernel.sum()
        v = F.conv2d(v, kernel.view(1, 1, 1, -1))
        v = F.conv2d(v, kernel.view(1, 1, -1, 1))
        view = v[:, 0]
    if colour_jitter > 0:  # draws nothing when off: earlier models stay reproducible
        view = band_jitter(view, colour_jitter, gen)
    contrast = float(torch.empty(1).uniform_(0.8, 1.2, generator=gen))
    brightness = float(torch.empty(1).uniform_(-0.2, 0.2, generator=gen))
    mean = view.mean(dim=(1, 2), keepdim=True)
    view = (view - mean) * contrast + mean + brightness
    a, b = (float(torch.empty(1).uniform_(0.8, 1.2, generator=gen)) for _ in range(2))
    angle = float(torch.rand(1, generator=gen)) * 2 * math.pi
    t = torch.linspace(0, 1, s, device=view.device)
    along = math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    view = view * (a + (b - a) * along)[None]
    if float(torch.rand(1, generator=gen)) < 0.5:
        area = float(torch.empty(1).uniform_(0.02, 0.2, generator=gen)) * s * s
        eh = max(1, min(s, round(math.sqrt(area))))
        r = int(torch.randint(0, s - eh + 1, (1,), generator=gen))
        q = int(torch.randint(0, s - eh + 1, (1,), generator=gen))
        view = view.clone()
        view[:, r : r + eh, q : q + eh] = 0.0
    return view


def make_views(
    windows: Tensor,
    min_scale: float,
    gen: torch.Generator,
    augment: bool = True,
    colour_jitter: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Two augmented views of each window and their sampling grids.

    Args:
        windows: (N, C, S, S) normalised windows.
        min_scale: the smallest crop, as a fraction of the window's area (Ghandali et al.: 0.2).
        gen: the CPU generator every random choice draws from (reproducible by seed).
        augment: apply the photometric augmentations (the geometric ones always).
        colour_jitter: strength of the per-band jitter (:func:`band_jitter`); 0 = none.

    Returns:
        (2, N, C, S, S) views and (2, N, S, S, 2) grids (window coordinates in [-1, 1] of
        each view pixel).
    """
    n, _, s, _ = windows.shape
    grids = torch.stack(
        [torch.stack([random_view_grid(s, min_scale, gen) for _ in range(n)]) for _ in range(2)]
    ).to(windows.device)
    views = torch.stack(
        [F.grid_sample(windows, grids[v], mode="bilinear", align_corners=False) for v in range(2)]
    )
    if augment:
        views = torch.stack(
            [
                torch.stack([photometric(views[v, i], gen, colour_jitter) for i in range(n)])
                for v in range(2)
            ]
        )
    return views, grids


def view_points(grids: Tensor, points: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``points`` places in the overlap of each pair of views, in each view's coordinates.

    Args:
        grids: (2, N, S, S, 2) from :func:`make_views`.
        points: places per window.
        gen: CPU generator.

    Returns:
        (2, N, P, 2) view coordinates in [-1, 1] (x, y) for ``grid_sample``, and (N, P) bool:
        True where the place is inside both views (pairs without overlap have none).
    """
    n = grids.shape[1]
    out = torch.zeros(2, n, points, 2)
    ok = torch.zeros(n, points, dtype=torch.bool)
    for i in range(n):
        boxes = [
            (grids[v, i, ..., 0].min(), grids[v, i, ..., 0].max(),
             grids[v, i, ..., 1].min(), grids[v, i, ..., 1].max())
            for v in range(2)
        ]  # fmt: skip
        x_lo, x_hi = max(b[0] for b in boxes), min(b[1] for b in boxes)
        y_lo, y_hi = max(b[2] for b in boxes), min(b[3] for b in boxes)
        if x_hi <= x_lo or y_hi <= y_lo:
            continue
        u = torch.rand(points, generator=gen) * float(x_hi - x_lo) + float(x_lo)
        w = torch.rand(points, generator=gen) * float(y_hi - y_lo) + float(y_lo)
        for v in range(2):
            out[v, i] = _window_to_view(grids[v, i].cpu(), torch.stack([u, w], dim=1))
        ok[i] = True
    return out.to(grids.device), ok.to(grids.device)


def _window_to_view(grid: Tensor, places: Tensor) -> Tensor:
    """Where window places (P, 2) lie in a view whose sampling grid is (S, S, 2), as view
    coordinates in [-1, 1]. The grid is an affine map of the view's pixel centres (a crop,
    resize, rotation and flip), solved from three of its corners."""
    s = grid.shape[0]
    lo, hi = 1 / s - 1, 1 - 1 / s  # the first and last pixel centres in [-1, 1]
    # view (x, y) -> window (u, v) is affine: fit it exactly on three pixel centres.
    src = torch.tensor([[lo, lo, 1.0], [hi, lo, 1.0], [lo, hi, 1.0]], dtype=torch.float64)
    dst = torch.stack([grid[0, 0], grid[0, s - 1], grid[s - 1, 0]]).double()
    affine = torch.linalg.solve(src, dst)  # (3, 2): [x y 1] @ affine = [u v]
    lin, shift = affine[:2], affine[2]
    view: Tensor = (places.double() - shift) @ torch.linalg.inv(lin)
    return view.float()


def sample_at(features: Tensor, coords: Tensor) -> Tensor:
    """(N, D, h, w) feature maps sampled at (N, P, 2) view coordinates -> (N, P, D): what
    those coordinates mean (:func:`view_points`, :func:`~lcmap.methods._sliding.hann_pixels`).
    Training and the probe read hypercolumns at them through
    :meth:`~lcmap.nets.encoder_unet.EncoderUNet.hypercolumn_at`, tested against this."""
    out = F.grid_sample(features, coords[:, :, None, :], mode="bilinear", align_corners=False)
    return out[..., 0].permute(0, 2, 1)
