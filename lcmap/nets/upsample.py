"""Cosine similarity of bilinearly upsampled codes to a few vectors, without upsampling the codes.

STEGO's prediction upsamples each window's patch codes (D channels, 70 by default) to pixels,
normalises every pixel's code and takes its dot product with the K centroids (or the linear
probe's K weight vectors). Done literally that is D x H x W values upsampled and K x D x H x W
multiply-adds a window, as much work as the ViT itself on a GPU. Bilinear interpolation is
linear, so the same numbers come from far less work:

- the numerator: ``<up(c)(x), m_k> = up(<c, m_k>)(x)``: the K patch-level dot products,
  upsampled;
- the denominator ``|up(c)(x)|``: interpolate the codes along the rows only (D x H x W/p
  values), then along each row a pixel lies between two columns ``j``, ``j + 1`` with weights
  ``1 - t``, ``t``, so ``|u|^2 = (1 - t)^2 |u_j|^2 + 2 t (1 - t) <u_j, u_j+1> + t^2 |u_j+1|^2``,
  from each column's squared norm and each pair of neighbours' dot product.

Same result up to float rounding (a unit test holds it to 1e-5 of the literal form), same
semantics as STEGO's own evaluation (upsample the codes, then the probe). The hypercolumn of a
contrastively pre-trained encoder (:meth:`lcmap.nets.encoder_unet.EncoderUNet.hypercolumn_dots`)
is scored the same way, stage by stage.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def source_columns(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """For each output index: left source index, right source index and the right weight, as
    ``F.interpolate(mode="bilinear", align_corners=False)`` computes them for a size."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(
        min=0
    )
    left = src.floor().long().clamp(max=n_in - 1)
    right = (left + 1).clamp(max=n_in - 1)
    return left, right, src - left.float()


def upsampled_cosine(codes: Tensor, vectors: Tensor, size: tuple[int, int]) -> Tensor:
    """``einsum(normalize(interpolate(codes, size)), vectors)`` without the (B, D, H, W) tensor.

    Args:
        codes: (B, D, h, w) float codes at patch resolution.
        vectors: (K, D) float vectors (centroids or a linear probe's weights).
        size: output (H, W), as ``F.interpolate(..., size=size, mode="bilinear",
            align_corners=False)`` takes it.

    Returns:
        (B, K, H, W): each pixel's upsampled code, L2-normalised (``F.normalize``'s eps), dotted
        with each vector.
    """
    dots, squared = upsampled_dots(codes, vectors, size)
    return dots / squared.clamp(min=1e-24).sqrt()[:, None]


def upsampled_dots(codes: Tensor, vectors: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The upsampled codes' dot products with ``vectors`` and their squared norms.

    Returns:
        (B, K, H, W) ``einsum(interpolate(codes, size), vectors)`` and (B, H, W)
        ``|interpolate(codes, size)|^2``, without the (B, D, H, W) tensor (see the module).
    """
    height, width = size
    dots = torch.einsum("bdhw,kd->bkhw", codes, vectors)
    dots = F.interpolate(dots, size=size, mode="bilinear", align_corners=False)
    rows = F.interpolate(
        codes, size=(height, codes.shape[-1]), mode="bilinear", align_corners=False
    )
    norms = (rows * rows).sum(1)  # (B, H, w)
    pairs = (rows[..., :-1] * rows[..., 1:]).sum(1)  # (B, H, w - 1): <u_j, u_j+1>
    pairs = torch.cat([pairs, norms[..., -1:]], dim=-1)  # at the last column right == left
    left, right, t = source_columns(codes.shape[-1], width, codes.device)
    s = 1 - t
    squared = s * s * norms[..., left] + 2 * s * t * pairs[..., left] + t * t * norms[..., right]
    return dots, squared.clamp(min=0)
