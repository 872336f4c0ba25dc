"""STEGO's segmentation head and correspondence-distillation loss (Hamilton et al., ICLR 2022)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class StegoHead(nn.Module):
    """STEGO's segmentation head: a linear and a non-linear 1x1 path, summed."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Conv2d(in_dim, dim, 1)
        self.nonlinear = nn.Sequential(
            nn.Conv2d(in_dim, in_dim, 1), nn.ReLU(), nn.Conv2d(in_dim, dim, 1)
        )

    def reset_parameters(self, generator: torch.Generator) -> None:
        """PyTorch's default Conv2d initialisation, drawn from ``generator`` (reproducible)."""
        for conv in (self.linear, self.nonlinear[0], self.nonlinear[2]):
            assert isinstance(conv, nn.Conv2d)
            nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=generator)
            if conv.bias is not None:
                bound = 1 / math.sqrt(conv.weight[0].numel())
                nn.init.uniform_(conv.bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """(B, D, h, w) features -> (B, dim, h, w) codes."""
        out: Tensor = self.linear(x) + self.nonlinear(x)
        return out


def correlation(a: Tensor, b: Tensor, normalized: bool = False) -> Tensor:
    """Cosine correlation of every position of ``a`` with every position of ``b``.

    Args:
        a: (N, C, H, W).
        b: (N, C, I, J).
        normalized: the vectors along C already have unit length (skips normalising).

    Returns:
        (N, H, W, I, J).
    """
    if not normalized:
        a = F.normalize(a, dim=1, eps=1e-10)
        b = F.normalize(b, dim=1, eps=1e-10)
    return torch.einsum("nchw,ncij->nhwij", a, b)


def centre_correlation(fd: Tensor) -> Tensor:
    """Spatially centre (N, H, W, I, J) correlations: subtract each row's mean over (I, J).

    As the official code, the global mean is added back so that the shifts b keep their scale.
    """
    return fd - fd.mean(dim=(3, 4), keepdim=True) + fd.mean()


def correspondence_loss(
    feats1: Tensor,
    feats2: Tensor,
    codes1: Tensor,
    codes2: Tensor,
    shift: float,
    normalized: bool = False,
) -> Tensor:
    """One term of the correspondence-distillation loss (mean over all position pairs).

    ``-clamp(S, min=0) * (F_centred - b)`` where ``F`` is the feature and ``S`` the code
    correlation: code similarity is pushed up where the (centred) feature correlation exceeds
    the shift ``b`` and down to zero (the zero clamp) where it is below.

    Args:
        feats1: (N, D, H, W) backbone features (treated as constants).
        feats2: (N, D, I, J).
        codes1: (N, d, H, W) head codes.
        codes2: (N, d, I, J).
        shift: b.
        normalized: features and codes already have unit length along dim 1.
    """
    with torch.no_grad():
        fd = centre_correlation(correlation(feats1, feats2, normalized))
    cd = correlation(codes1, codes2, normalized)
    return -(cd.clamp(min=0) * (fd - shift)).mean()


def channel_dropout(x: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Dropout2d (whole channels per sample) drawn from a CPU ``generator``."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape[0], x.shape[1], 1, 1, generator=generator) >= p
    return x * keep.to(x.device, x.dtype) / (1 - p)


def distillation_loss(
    head: nn.Module,
    feats: Tensor,
    feats_knn: Tensor,
    generator: torch.Generator,
    params: dict[str, float],
    *,
    feature_samples: int = 11,
    neg_samples: int = 5,
    dropout: float = 0.1,
) -> tuple[Tensor, dict[str, float]]:
    """STEGO's loss for a batch: self, k-NN and random-crop correspondence terms.

    Features are sampled at ``feature_samples`` x ``feature_samples`` random positions
    (bilinear, as STEGO) and the pointwise head is applied to the samples.

    Args:
        head: maps (B, D, s, s) features to (B, d, s, s) codes.
        feats: (B, D, h, w) backbone features of the batch crops (B >= 2).
        feats_knn: (B, D, h, w) features of one k-NN crop of each.
        generator: CPU generator for sample positions, permutations and dropout.
        params: ``{self,knn,random}_{weight,shift}``: lambda and b of each term.
        feature_samples: samples per side.
        neg_samples: random pairings of the batch (5 in STEGO).
        dropout: channel dropout on the head's input.

    Returns:
        The loss (with gradient to the head) and the value of each term.
    """
    b, dev, s = feats.shape[0], feats.device, feature_samples
    coords1 = (torch.rand(b, s, s, 2, generator=generator) * 2 - 1).to(dev)
    coords2 = (torch.rand(b, s, s, 2, generator=generator) * 2 - 1).to(dev)

    def sample(t: Tensor, coords: Tensor) -> Tensor:
        return F.grid_sample(t, coords, padding_mode="border", align_corners=True)

    def code(f: Tensor) -> Tensor:
        return F.normalize(head(channel_dropout(f, dropout, generator)), dim=1, eps=1e-10)

    f1, f2, fk = sample(feats, coords1), sample(feats, coords2), sample(feats_knn, coords2)
    c1, c2, ck = code(f1), code(f2), code(fk)
    # Unit vectors once, not in each of the 2 + neg_samples terms (a CPU hot spot).
    f1, f2, fk = (F.normalize(t, dim=1, eps=1e-10) for t in (f1, f2, fk))
    self_term = correspondence_loss(f1, f1, c1, c1, params["self_shift"], normalized=True)
    knn_term = correspondence_loss(f1, fk, c1, ck, params["knn_shift"], normalized=True)
    random_terms = []
    for _ in range(neg_samples):
        # A random non-identity pairing: shift every index by 1..b-1.
        perm = ((torch.arange(b) + torch.randint(1, b, (1,), generator=generator)) % b).to(dev)
        random_terms.append(
            correspondence_loss(f1, f2[perm], c1, c2[perm], params["random_shift"], True)
        )
    random_term = torch.stack(random_terms).mean() if random_terms else self_term * 0
    loss = (
        params["self_weight"] * self_term
        + params["knn_weight"] * knn_term
        + params["random_weight"] * random_term
    )
    parts = {
        "self": float(self_term.detach()),
        "knn": float(knn_term.detach()),
        "random": float(random_term.detach()),
    }
    return loss, parts
