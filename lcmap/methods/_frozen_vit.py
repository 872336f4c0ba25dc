"""A frozen timm ViT as a feature extractor: the part STEGO and ``dino_kmeans`` share.

Builds the backbone through the network factory, resolves and loads its weights (see
:mod:`lcmap.nets.vit`), keeps only the blocks up to the feature layer, and adapts the patch
embedding and the normalisation to the scene's band count.
"""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lcmap.errors import InvalidOptionError, InvalidSceneError
from lcmap.methods.base import FixedWindows, Window
from lcmap.nets import build_net
from lcmap.nets import vit as _vit

#: The feature block measured best for each known backbone (1-based), used when no
#: ``feature_layer`` is given: for DINOv2-S/14, block 8, whose features separated land-cover
#: classes best under cosine k-means and for STEGO (the last blocks are more semantic than
#: spatial, and the offline weights' last blocks were tuned for saliency).
#: Backbones not listed use their last block (not measured here: no such weights offline).
BEST_FEATURE_LAYER = {"vit_small_patch14_dinov2.lvd142m": 8}


class FrozenViT:
    """A frozen ViT cut after its feature block.

    Args:
        method: the method's name, for messages.
        backbone, weights, weights_sha256, feature_layer, backbone_args: as in
            :class:`~lcmap.methods.configs.StegoConfig`.
        crop_size: the window side, rounded down to a patch multiple (:attr:`crop_size`).
    """

    def __init__(
        self,
        method: str,
        backbone: str,
        weights: str | None,
        weights_sha256: str | None,
        feature_layer: int | None,
        backbone_args: dict[str, Any],
        crop_size: int,
    ) -> None:
        self.method = method
        self.net = build_net("vit", backbone=backbone, backbone_args=backbone_args)
        self.name = _vit.full_name(backbone)
        self.resolved = _vit.resolve_weights(backbone, weights, weights_sha256)
        _vit.load_backbone_weights(self.net, self.resolved.path, self.name)
        depth = len(self.net.blocks)
        if feature_layer is None:
            # The measured block holds for the stock architecture, not a resized one.
            known = BEST_FEATURE_LAYER.get(self.name) if not backbone_args else None
            feature_layer = known if known is not None and known <= depth else depth
        if not (1 <= feature_layer <= depth or -depth <= feature_layer <= -1):
            raise InvalidOptionError(
                f"feature_layer={feature_layer} is out of range for {self.name} "
                f"({depth} blocks): use 1..{depth} or -{depth}..-1."
            )
        self.feature_layer = feature_layer if feature_layer > 0 else depth + 1 + feature_layer
        # Blocks after the feature layer are never run: drop them.
        self.net.prune_intermediate_layers(
            [self.feature_layer - 1], prune_norm=False, prune_head=True
        )
        self.net.requires_grad_(False).eval()
        patch = self.net.patch_embed.patch_size
        self.patch_size = int(patch[0] if isinstance(patch, tuple | list) else patch)
        self.crop_size = max(self.patch_size, crop_size)
        self.crop_size -= self.crop_size % self.patch_size
        pretrained: dict[str, Any] = dict(getattr(self.net, "pretrained_cfg", None) or {})
        self.rgb_mean = tuple(pretrained.get("mean", (0.485, 0.456, 0.406)))
        self.rgb_std = tuple(pretrained.get("std", (0.229, 0.224, 0.225)))
        self.in_channels: int | None = None
        self.mean = torch.zeros(0)
        self.std = torch.ones(0)
        self.device = torch.device("cpu")

    def window(self, stride: int | None) -> Window:
        """The mapping window: ``crop_size`` px every ``stride`` px (None = half a window)."""
        stride = self.crop_size // 2 if stride is None else stride
        if self.crop_size % stride:
            raise InvalidOptionError(
                f"{self.method} option window_stride={stride} must be a divisor of crop_size="
                f"{self.crop_size}."
            )
        return Window(self.crop_size, stride)

    @property
    def dim(self) -> int:
        """Feature channels D."""
        return int(self.net.num_features)

    def set_in_channels(self, channels: int) -> None:
        """Adapt the patch embedding and the normalisation to ``channels`` bands."""
        if self.in_channels is not None and self.in_channels != channels:
            raise InvalidSceneError(
                f"The scenes have {channels} bands but this {self.method} model expects "
                f"{self.in_channels}; pass bands= to pick {self.in_channels}."
            )
        _vit.adapt_input_channels(self.net, channels)
        self.in_channels = channels
        dev = self.device
        self.mean = torch.tensor(_vit.adapt_band_stats(self.rgb_mean, channels), device=dev)
        self.std = torch.tensor(_vit.adapt_band_stats(self.rgb_std, channels), device=dev)
        self.net.to(dev)

    def to(self, device: torch.device) -> None:
        """Move the backbone and the normalisation to ``device``."""
        self.device = torch.device(device)
        self.net.to(self.device)
        self.mean = self.mean.to(self.device)
        self.std = self.std.to(self.device)

    def features(self, images: Tensor) -> Tensor:
        """(B, C, H, W) bands (~0..1, sides a patch multiple) -> (B, D, H / patch, W / patch)
        fp32 features of block ``feature_layer`` (final norm applied), without gradient; the
        backbone itself runs in bf16 where the device has it natively
        (:func:`~lcmap.nets.vit.backbone_precision`)."""
        x = (images - self.mean.view(1, -1, 1, 1).to(images.dtype)) / self.std.view(1, -1, 1, 1).to(
            images.dtype
        )
        with torch.no_grad(), _vit.backbone_precision(images.device):
            out = self.net.forward_intermediates(
                x,
                indices=[self.feature_layer - 1],
                norm=True,
                stop_early=True,
                intermediates_only=True,
                output_fmt="NCHW",
            )
        assert isinstance(out, list)
        # fp32 from here: the scores and distances computed on the features must not round.
        feats: Tensor = out[0].float()
        return feats

    def header(self) -> dict[str, Any]:
        """Backbone facts for the model header."""
        return {
            "backbone": self.name,
            "weights": str(self.resolved.path),
            "weights_sha256": self.resolved.sha256,
            "weights_source": self.resolved.source,
            "feature_layer": self.feature_layer,
            "patch_size": self.patch_size,
        }

    def weights_path(self) -> str:
        """The weights file, absolute (recorded in ``config()``)."""
        return str(Path(self.resolved.path).resolve())


class FrozenViTWindows(FixedWindows):
    """The mapping facts every method on a :class:`FrozenViT` derives from it (mixed in
    before :class:`~lcmap.methods.base.Segmenter`): its band count, and the fixed window it is
    scored in, with the halo that window needs and the windows per backbone pass."""

    vit: FrozenViT
    _window: Window
    cfg: Any  # a config with ``feature_batch``

    @property
    def in_channels(self) -> int | None:
        """Band count (None until fitted or given)."""
        return self.vit.in_channels

    @property
    def window_batch(self) -> int:
        """Windows per backbone forward pass while mapping (``feature_batch``)."""
        return int(self.cfg.feature_batch)
