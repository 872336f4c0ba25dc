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
