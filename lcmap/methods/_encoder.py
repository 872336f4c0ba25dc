"""What ``simclr`` and ``encoder_finetuned`` share: an encoder UNet seen through fixed windows.

Both build :class:`~lcmap.nets.encoder_unet.EncoderUNet` from their options once the band count
is known, and map with ``crop_size`` windows every ``window_stride`` px, Hann-blended (as the
ViT methods), so the map does not depend on ``--tile`` and BatchNorm in eval mode makes a
window's scores depend on that window alone.
"""

from dataclasses import asdict, replace
from typing import Any

import torch
from torch import Tensor

from lcmap.errors import InvalidOptionError
from lcmap.methods._sliding import mirror_pad
from lcmap.methods.base import FixedWindows, Segmenter, Window
from lcmap.methods.configs import EncoderOptions
from lcmap.nets import build_net, network_record
from lcmap.nets.catalogue import FIXED_SIZE
from lcmap.nets.encoder_unet import EMBED_STRIDE, EncoderUNet
from lcmap.tiling import padded_length, window_offsets


def window_geometry(encoder: str, crop_size: int | None, stride: int | None) -> Window:
    """The window an encoder network sees: ``crop_size`` (Swin's fixed 224 by default, else
    128) every ``stride`` px (half a window by default); checked against the encoder."""
    fixed = FIXED_SIZE.get(encoder)
    size = crop_size or fixed or 128
    if fixed is not None and size != fixed:
        raise InvalidOptionError(f"encoder {encoder} takes {fixed} px windows; crop_size={size}")
    if size % 32:
        raise InvalidOptionError(f"crop_size={size} must be a multiple of 32 (encoder stride)")
    stride = stride or size // 2
    if size % stride:
        raise InvalidOptionError(f"window_stride={stride} must divide crop_size={size}")
    return Window(size, stride)


class EncoderSegmenter(FixedWindows, Segmenter):
    """A method whose network is an encoder UNet seen through fixed windows.

    Subclasses set ``info``, add their own state in :meth:`_build` and say which network
    options they record in :meth:`_net_config`.
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self._window = window_geometry(cfg.encoder, cfg.crop_size, cfg.window_stride)
        self.cfg = replace(cfg, crop_size=self._window.size, window_stride=self._window.stride)
        self.net: EncoderUNet | None = None

    def _build(self, channels: int) -> None:
        """Build the network for ``channels`` bands (seeded by the options' seed)."""
        self.cfg = replace(self.cfg, in_channels=channels)
        torch.manual_seed(self.cfg.seed)
        net = build_net("encoder_unet", **self._net_config())
        assert isinstance(net, EncoderUNet)
        self.net = net

    def _net_config(self) -> dict[str, Any]:
        cfg: EncoderOptions = self.cfg
        net = {"encoder": cfg.encoder, "in_channels": cfg.in_channels, "weights": cfg.weights}
        # recorded where they apply: other encoders' model files stay as they were
        return {**net, **({"vit_blocks": cfg.vit_blocks} if cfg.vit_blocks != 1 else {})}

    @property
    def num_classes(self) -> int:
        """Classes (or clusters) K."""
        k: int = self.cfg.num_classes
        return k

    @property
    def in_channels(self) -> int | None:
        """Band count (None until fitted)."""
        channels: int | None = self.cfg.in_channels
        return channels

    def config(self) -> dict[str, Any]:
        """The options as resolved (window size and stride, band count)."""
        return asdict(self.cfg)

    def network(self) -> dict[str, Any]:
        """The encoder UNet, by name and config (:mod:`lcmap.nets`)."""
        return network_record("encoder_unet", **self._net_config())

    def to(self, device: torch.device) -> "EncoderSegmenter":
        """Move the network to ``device``."""
        super().to(device)
        if self.net is not None:
            self.net.to(device)
        return self

    def _fitted(self) -> EncoderUNet:
        if self.net is None:
            raise RuntimeError(f"{self.info.name} must be fitted (or loaded) before it is used")
        return self.net


def mean_embedding(net: EncoderUNet, batch: Tensor, fixed: int | None) -> Tensor:
    """(B, C, H, W) patches -> (B, D): the mean of each patch's dense embedding over its cells.

    An encoder that takes windows of one size only (``fixed``: Swin's 224 px) sees the patch
    mirrored at the right and bottom up to whole windows, which tile it; only the patch's own
    cells count. Other encoders embed the patch whole.
    """
    h, w = batch.shape[-2:]
    if fixed is None or (h, w) == (fixed, fixed):
        return net.embed(batch.float()).mean(dim=(2, 3))
    height, width = padded_length(h, fixed, fixed), padded_length(w, fixed, fixed)
    x = mirror_pad(batch.float(), height - h, width - w)
    offsets = window_offsets(height, fixed, fixed), window_offsets(width, fixed, fixed)
    rows = []
    for r in offsets[0]:
        row = [net.embed(x[..., r : r + fixed, c : c + fixed]) for c in offsets[1]]
        rows.append(torch.cat(row, dim=-1))
    z = torch.cat(rows, dim=-2)
    return z[..., : max(1, h // EMBED_STRIDE), : max(1, w // EMBED_STRIDE)].mean(dim=(2, 3))
