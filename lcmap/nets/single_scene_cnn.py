"""The single-scene CNN of Saha et al.: 3x3 convolutions, channel attention, 1x1.

Built by name through :func:`lcmap.nets.build_net` (``"single_scene_cnn"``); trained by the
objective in :mod:`lcmap.methods.single_scene`.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """CBAM channel attention; a fixed per-channel scale in eval mode (see module docstring).

    Args:
        channels: feature channels C.
        reduction: the shared MLP maps C -> C // reduction -> C.
    """

    scale: Tensor

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        # The scene-level attention used at inference; a buffer so .to() and state_dict carry it.
        self.register_buffer("scale", torch.ones(channels))

    def weights(self, x: Tensor) -> Tensor:
        """(B, C, H, W) features -> (B, C) attention from each tile's global pooling."""
        avg = self.mlp(x.mean(dim=(2, 3)))
        peak = self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(avg + peak)

    def forward(self, x: Tensor) -> Tensor:
        """Scale each channel: per tile while training, by the frozen scene value otherwise."""
        if self.training:
            return x * self.weights(x)[:, :, None, None]
        return x * self.scale[None, :, None, None].to(x.dtype)


class SingleSceneNet(nn.Module):
    """The paper's Table 1: L x (3x3 conv, ReLU, BN), channel attention, 1x1 conv, BN."""

    def __init__(
        self, in_channels: int, layers: int, features: int, reduction: int, num_classes: int
    ) -> None:
        super().__init__()
        convs, norms = [], []
        channels = in_channels
        for _ in range(layers):
            convs.append(nn.Conv2d(channels, features, 3, stride=1, padding=1))
            norms.append(nn.BatchNorm2d(features))
            channels = features
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        self.attention = ChannelAttention(features, reduction)
        self.head = nn.Conv2d(features, num_classes, 1)
        self.head_norm = nn.BatchNorm2d(num_classes)
        # The authors' initialisation: Kaiming-uniform kernels, small positive biases.
        for conv in [*self.convs, self.head]:
            nn.init.kaiming_uniform_(conv.weight)
            assert conv.bias is not None
            nn.init.constant_(conv.bias, 0.01)
        for norm in [*self.norms, self.head_norm]:
            nn.init.constant_(norm.bias, 0.001)

    def batch_norms(self) -> list[nn.BatchNorm2d]:
        """All batch-normalisation layers."""
        return [m for m in [*self.norms, self.head_norm] if isinstance(m, nn.BatchNorm2d)]

    def features(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, features, H, W) before attention."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(F.relu(conv(x)))
        return x

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, K, H, W) scores."""
        return self.head_norm(self.head(self.attention(self.features(x))))  # type: ignore[no-any-return]
