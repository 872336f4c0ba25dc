"""DINOv2's ViT-S/14 as an encoder UNet's contracting path: one stage, its tokens at stride 14.

lcmap cannot download self-supervised CNN weights, and a CNN pre-trained by contrast on a few
scenes on a CPU learns little. The one self-supervised
network at hand is a DINOv2 ViT-S/14 (``lcmap weights``), and DINOv2's own evaluation of its
features for segmentation is a linear layer on the frozen patch tokens (Oquab et al. 2023,
section 7.4). :class:`ViTEncoder` makes that ViT an encoder like the others, so ``lcmap
pretrain --encoder dinov2-vits14 --weights FILE`` (``-p steps=0``: the weights as they are) and
``lcmap finetune`` with the default linear head give exactly that evaluation, the bands and
texture beside the tokens.

- The ViT is cut after block :data:`FEATURE_BLOCK` (later blocks are never run), its final
  LayerNorm applied to that block's tokens, as :class:`~lcmap.methods._frozen_vit.FrozenViT`
  reads them for STEGO. With ``blocks`` = n > 1 the n last blocks up to the cut are returned,
  one stage each (the hypercolumn concatenates them): DINOv2's boosted linear evaluation for
  segmentation reads the tokens of the last 4 blocks (Oquab et al. 2023, section 7.4, "+ms").
- The bands, stretched to 0..1, are standardised with the ImageNet mean and standard deviation
  DINOv2 was trained with (extra bands: the RGB means), and the patch embedding takes N bands
  (:func:`~lcmap.nets.vit.adapt_input_channels`).
- A ``weights`` file is read as STEGO reads its backbone (official DINOv2 ``.pth`` or a timm
  ``.safetensors``, :func:`~lcmap.nets.vit.load_backbone_weights`); without one the ViT is
  randomly initialised (the "random init" rows).
"""

from pathlib import Path

import torch
from torch import Tensor, nn

from lcmap.errors import InvalidOptionError
from lcmap.nets import vit as _vit

#: timm's architecture for ``dinov2-vits14``.
ARCH = "vit_small_patch14_dinov2"
#: The block whose tokens are the encoder's output (1-based): block 8 of 12 separated land-cover
#: classes best under cosine k-means and for STEGO, and the offline weights' last blocks were
#: tuned for saliency (``../shared/weights/README.md``).
FEATURE_BLOCK = 8


class ViTEncoder(nn.Module):
    """A timm ViT returning one feature map: block :data:`FEATURE_BLOCK`'s tokens, NCHW.

    Args:
        in_channels: bands of the input.
        weights: optional local DINOv2 checkpoint (official ``.pth`` or timm ``.safetensors``).
        block: the last block whose tokens are returned (1-based); later ones are cut off.
        blocks: how many blocks, up to ``block``, return their tokens (one stage each).
    """

    def __init__(
        self,
        in_channels: int,
        weights: str | None = None,
        block: int = FEATURE_BLOCK,
        blocks: int = 1,
    ) -> None:
        super().__init__()
        if not 1 <= blocks <= block:  # the options' names, as a model's config gives them
            raise InvalidOptionError(f"vit_blocks must be 1 to {block}, not {blocks}.")
        body, name = _vit.create_backbone(ARCH)
        if weights is not None:
            _vit.load_backbone_weights(body, Path(weights), name)
        _vit.adapt_input_channels(body, in_channels)
        body.prune_intermediate_layers([block - 1], prune_norm=False, prune_head=True)
        body.requires_grad_(True)  # adapt_input_channels freezes the new patch embedding
        self.body = body
        #: The blocks whose tokens are returned (0-based, in order).
        self.indices = list(range(block - blocks, block))
        cfg = dict(getattr(body, "pretrained_cfg", None) or {})
        mean = _vit.adapt_band_stats(tuple(cfg.get("mean", (0.485, 0.456, 0.406))), in_channels)
        std = _vit.adapt_band_stats(tuple(cfg.get("std", (0.229, 0.224, 0.225))), in_channels)
        # Not in the state: they follow from the band count, as the architecture does.
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        patch = body.patch_embed.patch_size
        stride = int(patch[0] if isinstance(patch, tuple | list) else patch)
        #: Channels and reductions of the stages, one per block (as :class:`TimmEncoder` says).
        self.out_channels: list[int] = [int(body.num_features)] * blocks
        self.reductions: list[int] = [stride] * blocks

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, H, W) stretched bands, sides multiples of 14 -> [(B, 384, H / 14, W / 14)],
        one per returned block, earliest first."""
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        x = (x - mean.to(x.dtype)) / std.to(x.dtype)
        out = self.body.forward_intermediates(
            x,
            indices=self.indices,
            norm=True,
            stop_early=True,
            intermediates_only=True,
            output_fmt="NCHW",
        )
        assert isinstance(out, list)
        return list(out)
