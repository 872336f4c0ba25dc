"""UNets whose contracting path is a named encoder: ResNet-UNet, Swin-UNet, or the CAS UNet's.

Seeds 003 and 004 compare a plain UNet, a ResNet-UNet and a Swin-UNet, each from scratch or
with a contracting path pre-trained by contrastive learning. :class:`EncoderUNet` is that
network for any encoder of :data:`ENCODERS`:

- the encoder (contracting path) returns multi-scale feature maps, finest first
  (:class:`~lcmap.nets.timm_encoder.TimmEncoder` for timm's ResNets and Swin-T, with an N-band
  stem; :class:`UNetEncoder` for the CAS UNet's own contracting path;
  :class:`~lcmap.nets.vit_encoder.ViTEncoder` for DINOv2's ViT-S/14, one stage at stride 14);
- the expanding path is a light convolutional UNet decoder: at each level, upsample x2
  (bilinear), concatenate the encoder's skip, two 3x3 convolutions with BatchNorm and ReLU; a
  last upsampling to the input's resolution and a 1x1 convolution give the class scores.

Swin-UNet (Cao et al. 2021, Temple's reference [4]) expands with Swin blocks and patch
expanding. Here its expanding path is the same light convolutional decoder as the ResNet-UNet's,
by choice: Temple's own discussion (its section 5) finds that the pre-trained *contracting*
path is what the comparison is about, and that the original "Swin-UNet + SSL" replaced the
contracting path only. One decoder for every encoder keeps the rows of that comparison about
the encoder alone; the decoder is trained from the labels in every case, as in both seeds.

:meth:`EncoderUNet.embed` gives the dense embedding an unsupervised map clusters: the encoder's
stages at stride 4 and coarser, each upsampled to stride 4 and L2-normalised, concatenated (a
hypercolumn); every stage of a contrastively pre-trained encoder is in it, and no untrained
decoder weight is. With ``head="linear"`` the network has no decoder: a 1x1 classification
layer on that embedding, its scores upsampled (bilinear) to the input's resolution. This is the
linear evaluation of a self-supervised encoder (SimCLR, Chen et al. 2020, section 4; STEGO's
linear probe): the few labels train K x D weights only, and the classes are read from the same
features the unsupervised map clusters.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcmap.errors import InvalidOptionError
from lcmap.nets.catalogue import ENCODERS, FIXED_SIZE, HEADS
from lcmap.nets.timm_encoder import TimmEncoder
from lcmap.nets.unet import UNet
from lcmap.nets.upsample import source_columns, upsampled_dots
from lcmap.nets.vit_encoder import ViTEncoder

#: The embedding's stride (pixels per embedding cell).
EMBED_STRIDE = 4
#: Damping of :func:`normalised_differences` (bands are stretched to 0..1: 1% of the stretch).
INDEX_EPS = 0.01
#: Cells (of :data:`EMBED_STRIDE` px) across the wider neighbourhood of :func:`local_std`.
TEXTURE_CELLS = 3


class UNetEncoder(nn.Module):
    """The CAS UNet's contracting path (:class:`~lcmap.nets.unet.UNet`), as an encoder.

    Args:
        in_channels: bands of the input.
        width: channels at full resolution; level ``i`` has ``width * 2**i``.
        depth: number of 2x poolings.
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 4) -> None:
        super().__init__()
        unet = UNet(in_channels, width, depth, embed_dim=width, out_channels=1)
        self.stem, self.down = unet.stem, unet.down
        self.out_channels = [width * 2**i for i in range(depth + 1)]
        self.reductions = [2**i for i in range(depth + 1)]

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, H, W) -> feature maps, finest first."""
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return feats


def build_encoder(
    encoder: str,
    in_channels: int,
    weights: str | None = None,
    img_size: int | None = None,
    vit_blocks: int = 1,
) -> nn.Module:
    """The contracting path called ``encoder`` (see :data:`ENCODERS`), randomly initialised
    or from a local timm/torchvision checkpoint (``weights``, first convolution adapted to
    ``in_channels``); ``vit_blocks``: the ViT's blocks returned (``dinov2-vits14`` only)."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder '{encoder}'; known: {', '.join(ENCODERS)}")
    if vit_blocks != 1 and encoder != "dinov2-vits14":
        raise InvalidOptionError(f"vit_blocks is for the dinov2-vits14 encoder, not {encoder}.")
    if not ENCODERS[encoder]:
        if weights is not None:
            raise ValueError("the unet encoder has no published weights; drop weights")
        return UNetEncoder(in_channels)
    if encoder == "dinov2-vits14":
        return ViTEncoder(in_channels, weights=weights, blocks=vit_blocks)
    size = FIXED_SIZE.get(encoder)  # CNNs take any size; Swin is built for its window
    return TimmEncoder(ENCODERS[encoder], in_channels, weights=weights, img_size=size)


class _Up(nn.Module):
    """Upsample x2 (bilinear) to the skip's size, concatenate it, two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        out: Tensor = self.conv(torch.cat([x, skip], dim=1))
        return out


def normalised_differences(bands: Tensor, eps: float = INDEX_EPS) -> Tensor:
    """(B, C, H, W) stretched bands -> (B, C (C - 1) / 2, H, W): ``(a - b) / (a + b + eps)``
    for every pair of bands a < b, the form of NDVI and NDWI, which a brightness change
    scales away; ``eps`` damps it where both bands are near black."""
    i, j = torch.triu_indices(bands.shape[1], bands.shape[1], offset=1, device=bands.device)
    a, b = bands[:, i], bands[:, j]
    return (a - b) / (a + b + eps)


def local_std(bands: Tensor, mean: Tensor | None = None, cells: int = TEXTURE_CELLS) -> Tensor:
    """(B, C, H, W) stretched bands -> (B, 2 C, H / 4, W / 4): each band's standard deviation
    over each 4 x 4 px embedding cell, then over the ``cells`` x ``cells`` cells around it (the
    local variance of remote-sensing texture measures, Woodcock and Strahler 1987: still water
    is smooth where vegetation of the same colour is not). ``mean``: the bands' cell means,
    when already computed."""
    mean = F.avg_pool2d(bands, EMBED_STRIDE) if mean is None else mean
    square = F.avg_pool2d(bands * bands, EMBED_STRIDE)
    wide = [
        F.avg_pool2d(m, cells, stride=1, padding=cells // 2, count_include_pad=False)
        for m in (mean, square)
    ]
    return torch.cat([(q - m * m).clamp(min=0).sqrt() for m, q in ((mean, square), wide)], 1)


class EncoderUNet(nn.Module):
    """A named encoder with a UNet decoder (or none) and a 1x1 classification layer.

    Args:
        encoder: a key of :data:`ENCODERS`.
        in_channels: bands of the input.
        out_channels: classes of the head.
        decoder_width: channels of the finest decoder level; each coarser level doubles them,
            up to 256.
        weights: a local timm/torchvision checkpoint for the encoder (RGB filters adapted).
        img_size: the window size, for encoders that need one (Swin: 224).
        head: ``decoder`` (the UNet decoder, then the classification layer), ``linear``
            (the classification layer on :meth:`embed`, no decoder), ``linear-bands``
            (on :meth:`embed` and the input's bands, :meth:`probe_input`),
            ``linear-indices`` (and the bands' :func:`normalised_differences`) or
            ``linear-texture`` (and each band's :func:`local_std`).
        vit_blocks: ``dinov2-vits14``: how many of the ViT's blocks up to its cut are stages.
    """

    def __init__(
        self,
        encoder: str,
        in_channels: int,
        out_channels: int = 2,
        decoder_width: int = 32,
        weights: str | None = None,
        img_size: int | None = None,
        head: str = "decoder",
        vit_blocks: int = 1,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head '{head}'; known: {', '.join(HEADS)}")
        self.linear = head != "decoder"
        #: Whether the linear head also reads the input's bands (:meth:`probe_input`).
        self.with_bands = head in ("linear-bands", "linear-indices", "linear-texture")
        #: Whether it also reads every pair of bands' normalised difference (:meth:`probe_input`).
        self.with_indices = head in ("linear-indices", "linear-texture")
        #: Whether it also reads each band's :func:`local_std` (:meth:`probe_input`).
        self.with_texture = head == "linear-texture"
        self.encoder = build_encoder(encoder, in_channels, weights, img_size, vit_blocks)
        #: Channels and reductions of the encoder's stages, finest first.
        self.channels: list[int] = list(self.encoder.out_channels)  # type: ignore[arg-type]
        self.reductions: list[int] = list(self.encoder.reductions)  # type: ignore[arg-type]
        #: Stages (at stride 4 and coarser, finest first) of the linear head's hypercolumn.
        self.head_stages = sum(r >= EMBED_STRIDE for r in self.reductions)
        chans = self.channels
        widths = [min(256, decoder_width * 2**i) for i in range(len(chans))]
        ups = []
        prev = chans[-1]
        for i in reversed(range(len(chans) - 1)):
            ups.append(_Up(prev, chans[i], widths[i]))
            prev = widths[i]
        self.up = nn.ModuleList([] if self.linear else ups)
        pairs = in_channels * (in_channels - 1) // 2 if self.with_indices else 0
        texture = 2 * in_channels if self.with_texture else 0
        bands = in_channels if self.with_bands else 0
        probe_dim = self.embed_dim(self.head_stages) + bands + pairs + texture
        self.head = nn.Conv2d(probe_dim if self.linear else prev, out_channels, 1)

    @property
    def stride(self) -> int:
        """Inputs must be multiples of this (the coarsest stage's reduction)."""
        return self.reductions[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        """The encoder's multi-scale feature maps, finest first."""
        feats: list[Tensor] = self.encoder(x)
        return feats

    def embed(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, D, H / 4, W / 4): :meth:`hypercolumn` of the encoder's features."""
        return self.hypercolumn(self.features(x), x.shape[-2:])

    def _embedded(
        self, feats: list[Tensor], size: Any, stages: int | None
    ) -> tuple[tuple[int, int], list[Tensor]]:
        """The embedding's (rows, cols) of cells for an input of ``size``, and the stages at
        stride 4 and coarser (the first ``stages`` of them) that the hypercolumn is made of."""
        kept = [f for f, r in zip(feats, self.reductions, strict=True) if r >= EMBED_STRIDE]
        return (size[0] // EMBED_STRIDE, size[1] // EMBED_STRIDE), kept[:stages]

    def hypercolumn(self, feats: list[Tensor], size: Any, stages: int | None = None) -> Tensor:
        """The stages at stride 4 and coarser (the first ``stages`` of them), each upsampled to
        stride 4 and unit-normalised per position, concatenated and unit-normalised again."""
        cells, kept = self._embedded(feats, size, stages)
        parts = [
            F.normalize(F.interpolate(f.float(), size=cells, mode="bilinear"), dim=1) for f in kept
        ]
        return F.normalize(torch.cat(parts, dim=1), dim=1)

    def hypercolumn_at(
        self, feats: list[Tensor], size: Any, coords: Tensor, stages: int | None = None
    ) -> Tensor:
        """``sample_at(hypercolumn(feats, size, stages), coords)``: (B, P, D), the hypercolumn
        sampled at (B, P, 2) ``grid_sample`` coordinates (bilinear, ``align_corners=False``,
        zero outside), built at the four stride-4 cells each point reads and nowhere else.

        A k-means probe reads 64 pixels a window; the whole hypercolumn of a 224-px window of
        DINOv2's four blocks is 56 x 56 x 1536 values, and building it was half of ``lcmap
        pretrain -p steps=0`` (the README's DINOv2 workflow). Same numbers up to float rounding
        (a unit test holds it to 1e-5 of the literal form)."""
        cells, kept = self._embedded(feats, size, stages)
        # grid_sample's four corners on the (cells) grid and their weights; outside: weight 0
        x = ((coords[..., 0].float() + 1) * cells[1] - 1) / 2
        y = ((coords[..., 1].float() + 1) * cells[0] - 1) / 2
        x0, y0 = x.floor(), y.floor()
        rows, cols, weights = [], [], []
        for r, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
            for c, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                inside = (r >= 0) & (r < cells[0]) & (c >= 0) & (c < cells[1])
                rows.append(r.long().clamp(0, cells[0] - 1))
                cols.append(c.long().clamp(0, cells[1] - 1))
                weights.append(wy * wx * inside)
        row, col = torch.stack(rows, -1).flatten(1), torch.stack(cols, -1).flatten(1)
        batch = torch.arange(row.shape[0], device=row.device)[:, None]
        parts = []
        for f in kept:  # each stage upsampled to stride 4 at those cells only
            f = f.float()
            top, bottom, ty = (t[row] for t in source_columns(f.shape[-2], cells[0], f.device))
            left, right, tx = (t[col] for t in source_columns(f.shape[-1], cells[1], f.device))
            ty, tx = ty[..., None], tx[..., None]
            upper = (1 - tx) * f[batch, :, top, left] + tx * f[batch, :, top, right]
            lower = (1 - tx) * f[batch, :, bottom, left] + tx * f[batch, :, bottom, right]
            parts.append(F.normalize((1 - ty) * upper + ty * lower, dim=-1))  # (B, 4P, C)
        column = F.normalize(torch.cat(parts, dim=-1), dim=-1)
        column = column.reshape(*coords.shape[:2], 4, column.shape[-1])
        return (column * torch.stack(weights, -1)[..., None]).sum(-2)

    def hypercolumn_dots(
        self, feats: list[Tensor], size: Any, vectors: Tensor, stages: int | None = None
    ) -> Tensor:
        """``einsum(hypercolumn(feats, size, stages), vectors)``: (B, K, H / 4, W / 4), without
        upsampling any stage (:func:`~lcmap.nets.upsample.upsampled_dots`, stage by stage, and
        the same two normalisations, ``F.normalize``'s eps included)."""
        cells, kept = self._embedded(feats, size, stages)
        dots, squared, start = [], [], 0
        for f in kept:
            part, norm2 = upsampled_dots(f.float(), vectors[:, start : start + f.shape[1]], cells)
            norm = norm2.sqrt().clamp(min=1e-12)  # the stage's own normalisation
            dots.append(part / norm[:, None])
            squared.append(norm2 / norm**2)  # |that stage's normalised part|^2
            start += f.shape[1]
        total = torch.stack(squared).sum(0).sqrt().clamp(min=1e-12)
        return torch.stack(dots).sum(0) / total[:, None]

    def probe_input(self, x: Tensor, feats: list[Tensor]) -> Tensor:
        """What the linear head reads: :meth:`hypercolumn`, and with ``head="linear-bands"``
        the input's bands averaged over each 4 x 4 cell after it (a pixel classifier's
        features beside the learnt ones); with ``head="linear-indices"`` also the
        :func:`normalised_differences` of those cell means; with ``head="linear-texture"``
        also each band's :func:`local_std`."""
        column = self.hypercolumn(feats, x.shape[-2:], self.head_stages)
        if not self.with_bands:
            return column
        return torch.cat([column, *self._band_features(x)], dim=1)

    def _band_features(self, x: Tensor) -> list[Tensor]:
        """What the linear head reads after the hypercolumn (see :meth:`probe_input`)."""
        bands = F.avg_pool2d(x.float(), EMBED_STRIDE)
        parts = [bands]
        if self.with_indices:
            parts.append(normalised_differences(bands))
        if self.with_texture:
            parts.append(local_std(x.float(), bands))
        return parts

    def _linear_scores(self, x: Tensor, feats: list[Tensor]) -> Tensor:
        """``head(probe_input(x, feats))``, the hypercolumn's share of the 1 x 1 layer through
        :meth:`hypercolumn_dots`, the bands' share as before: the same scores and gradients up
        to float rounding, without the (B, D, H / 4, W / 4) hypercolumn, which for a wide
        embedding (DINOv2's four blocks: D = 1536) would be most of a fine-tuning step."""
        weight = self.head.weight[:, :, 0, 0].float()
        width = self.embed_dim(self.head_stages)
        scores = self.hypercolumn_dots(feats, x.shape[-2:], weight[:, :width], self.head_stages)
        if self.with_bands:
            extra = torch.cat(self._band_features(x), dim=1)
            scores = scores + torch.einsum("bchw,kc->bkhw", extra, weight[:, width:])
        bias = self.head.bias
        return scores if bias is None else scores + bias.float()[None, :, None, None]

    def embed_dim(self, stages: int | None = None) -> int:
        """Channels of :meth:`embed` (of its first ``stages`` stages)."""
        pairs = zip(self.channels, self.reductions, strict=True)
        return sum([c for c, r in pairs if r >= EMBED_STRIDE][:stages])

    def forward(self, x: Tensor, feats: list[Tensor] | None = None) -> Tensor:
        """(B, C, H, W), H and W multiples of :attr:`stride` -> (B, out_channels, H, W) logits
        (``feats``: the encoder's :meth:`features` of ``x``, when already computed)."""
        feats = self.features(x) if feats is None else feats
        if self.linear:
            scores = self._linear_scores(x, feats)
            out_: Tensor = F.interpolate(
                scores, size=x.shape[-2:], mode="bilinear", align_corners=False
            )
            return out_
        y = feats[-1]
        for i, block in enumerate(self.up):
            y = block(y, feats[-2 - i])
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out: Tensor = self.head(y)
        return out


def encoder_state(net: EncoderUNet) -> dict[str, Any]:
    """The encoder's tensors (``encoder.*``), to start another network of the same encoder."""
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k.startswith("encoder.")}
