"""The UNet shared by ``cas`` (pre-training) and ``cas_finetuned`` (few-shot segmentation).

One network serves both stages of Ghosh et al. (CAS), its Fig. 2: during pre-training
the skip connections are removed and a reconstruction layer maps the decoder's features back to
the bands; for fine-tuning the skips and a classification layer are added back. So that the
pre-trained weights transfer one to one, each decoder block's first convolution has input
channels for *both* the upsampled path and the skip; without skips only the upsampled slice of
its weights is used (the same as concatenating zeros, without allocating them).

BatchNorm (not GroupNorm) keeps a prediction local: in eval mode a pixel's score depends on its
receptive field only, never on statistics of the whole tile.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Upsample x2, then (optionally) join the encoder's skip and apply two 3x3 convolutions.

    The first convolution's weight is ``(out, up + skip, 3, 3)``; without a skip only
    ``weight[:, :up]`` is used, which equals feeding zeros for the skip.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up_channels = out_channels
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv1 = nn.Conv2d(out_channels + skip_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        """(B, in, h, w) [+ skip (B, skip, 2h, 2w)] -> (B, out, 2h, 2w)."""
        x = self.up(x)
        if skip is None:
            x = F.conv2d(x, self.conv1.weight[:, : self.up_channels], padding=1)
        else:
            x = self.conv1(torch.cat([x, skip], dim=1))
        x = F.relu(self.bn1(x), inplace=True)
        return F.relu(self.bn2(self.conv2(x)), inplace=True)

    def zero_skip_weights(self) -> None:
        """Zero the skip slice, so that adding skips back leaves the function unchanged."""
        with torch.no_grad():
            self.conv1.weight[:, self.up_channels :].zero_()


class UNet(nn.Module):
    """UNet encoder-decoder with a linear bottleneck embedding and optional skip connections.

    Args:
        in_channels: bands of the input.
        width: channels at full resolution; level ``i`` has ``width * 2**i``.
        depth: number of 2x poolings; the bottleneck has stride ``2**depth``.
        embed_dim: channels of the bottleneck embedding (a 1x1 projection, no activation,
            so that k-means and the Student-t kernel see an unconstrained space).
        out_channels: channels of the output head (bands to reconstruct, or classes).
    """

    def __init__(
        self, in_channels: int, width: int, depth: int, embed_dim: int, out_channels: int
    ) -> None:
        super().__init__()
        chans = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.stem = DoubleConv(in_channels, chans[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(chans[i], chans[i + 1])) for i in range(depth)
        )
        self.embed = nn.Conv2d(chans[depth], embed_dim, 1)
        ups: list[UpBlock] = []
        prev = embed_dim
        for i in reversed(range(depth)):
            ups.append(UpBlock(prev, chans[i], chans[i]))
            prev = chans[i]
        self.up = nn.ModuleList(ups)
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    @property
    def stride(self) -> int:
        """Pixels per bottleneck cell."""
        return 1 << self.depth

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, C, H, W), H and W multiples of :attr:`stride` -> (embedding map, skips).

        The embedding map is (B, embed_dim, H / stride, W / stride); skips run from the
        finest level to the coarsest.
        """
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        return self.embed(skips.pop()), skips

    def decode(self, z: Tensor, skips: list[Tensor] | None) -> Tensor:
        """Embedding map (and skips, or None without skip connections) -> head output."""
        x = z
        for i, block in enumerate(self.up):
            x = block(x, skips[-1 - i] if skips is not None else None)
        out: Tensor = self.head(x)
        return out

    def forward(self, x: Tensor, use_skips: bool = True) -> tuple[Tensor, Tensor]:
        """Return ``(embedding map, head output)`` for (B, C, H, W) input."""
        z, skips = self.encode(x)
        return z, self.decode(z, skips if use_skips else None)

    def zero_skip_weights(self) -> None:
        """Zero every decoder block's skip slice (see :meth:`UpBlock.zero_skip_weights`)."""
        for block in self.up:
            assert isinstance(block, UpBlock)
            block.zero_skip_weights()


def receptive_field(depth: int, decoder: bool) -> int:
    """Receptive field in pixels of one output of :class:`UNet` (``depth`` poolings).

    Counted layer by layer (a ``k`` x ``k`` convolution at jump ``j`` widens it by ``(k - 1) j``,
    a 2x pooling by ``j``, a stride-2 transposed convolution by nothing): the embedding map
    (``decoder=False``) or the head output through the decoder (``decoder=True``).
    """
    field, jump = 5, 1  # the stem's two 3x3 convolutions
    for _ in range(depth):
        field += jump  # 2x max pooling
        jump *= 2
        field += 4 * jump  # two 3x3 convolutions
    if decoder:
        for _ in range(depth):
            jump //= 2
            field += 4 * jump
    return field


def local_halo(field: int, stride: int) -> int:
    """Halo for exact crop-centre stitching of a net with this receptive field and stride.

    Half the field, plus one ``stride`` for where a pixel sits inside its bottleneck cell,
    rounded up to a multiple of ``stride`` so every tile shares the scene's pooling grid.
    """
    return -(-(field // 2 + 1 + stride) // stride) * stride


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, int, int]:
    """Pad (B, C, H, W) at the bottom/right by reflection to multiples of ``multiple``.

    Returns the padded tensor and the original height and width.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def random_dihedral(*tensors: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
    """Apply one random flip/rotation (of the 8 symmetries of a square) to all tensors.

    Each tensor's last two axes are the image axes; all get the same transform.
    """
    k = int(torch.randint(0, 4, (1,), generator=generator))
    flip = bool(torch.randint(0, 2, (1,), generator=generator))
    return [dihedral(t, k, flip) for t in tensors]


def dihedral(t: Tensor, k: int, flip: bool) -> Tensor:
    """``t`` turned ``k`` quarter turns, then mirrored left-right if ``flip`` (last two axes)."""
    t = torch.rot90(t, k, dims=(-2, -1))
    return torch.flip(t, dims=(-1,)) if flip else t


def dihedral_mean(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The mean of ``fn`` over the 8 symmetries of the square applied to ``x``, each output
    turned back onto ``x``'s pixels (test-time augmentation; ``fn`` keeps the image axes)."""
    total = fn(x)
    for k, flip in [(k, f) for k in range(4) for f in (False, True)][1:]:
        y = fn(dihedral(x, k, flip))
        y = torch.flip(y, dims=(-1,)) if flip else y
        total = total + torch.rot90(y, -k, dims=(-2, -1))
    return total / 8
