"""The guided filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013).

Used to upsample coarse scores to pixels with the scene's bands as the guide: inside each
``2r + 1`` box the output is a linear function of the guide, so a score map that is blurred
across an edge of the image is pulled back onto that edge (bilinear upsampling alone smears
ViT-patch scores over 14 px). The colour-guide form of the paper (its eq. 19-21), with a
``C x C`` covariance solved per pixel; box means by average pooling (O(1) per pixel in r up to
the pooling cost), borders mirrored.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def _box(x: Tensor, r: int) -> Tensor:
    """Mean over a (2r + 1)^2 box, mirrored at the borders; (B, N, H, W) -> same shape."""
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode=mode), 2 * r + 1, stride=1)


def guided_filter(guide: Tensor, src: Tensor, radius: int, eps: float) -> Tensor:
    """Filter ``src`` with ``guide``.

    Args:
        guide: (B, C, H, W) guide image (a few bands, roughly 0..1).
        src: (B, K, H, W) maps to filter (scores of K classes).
        radius: box radius r in pixels.
        eps: regularisation: edges with a guide variance well below ``eps`` are smoothed.

    Returns:
        (B, K, H, W) filtered maps.
    """
    b, c, h, w = guide.shape
    k = src.shape[1]
    guide, src = guide.float(), src.float()
    mean_i = _box(guide, radius)
    mean_p = _box(src, radius)
    corr_ip = _box((guide[:, :, None] * src[:, None]).flatten(1, 2), radius).view(b, c, k, h, w)
    cov_ip = corr_ip - mean_i[:, :, None] * mean_p[:, None]
    corr_ii = _box((guide[:, :, None] * guide[:, None]).flatten(1, 2), radius).view(b, c, c, h, w)
    var_i = corr_ii - mean_i[:, :, None] * mean_i[:, None]
    var_i = var_i + eps * torch.eye(c, device=guide.device).view(1, c, c, 1, 1)
    # a = (Sigma + eps U)^-1 cov(I, p), one C x C system per pixel (eq. 19).
    a = torch.linalg.solve(var_i.permute(0, 3, 4, 1, 2), cov_ip.permute(0, 3, 4, 1, 2))
    a = a.permute(0, 3, 4, 1, 2)  # (B, C, K, H, W)
    offset = mean_p - (a * mean_i[:, :, None]).sum(1)
    mean_a = _box(a.flatten(1, 2), radius).view(b, c, k, h, w)
    result: Tensor = (mean_a * guide[:, :, None]).sum(1) + _box(offset, radius)
    return result
