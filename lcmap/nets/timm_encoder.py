"""Any timm ``features_only`` encoder (ResNet, Swin, ConvNeXt...) with an N-band stem.

The hook for encoders pre-trained on the user's scenes (contrastive pre-training) and for
UNet decoders on top of them: :class:`TimmEncoder` returns the multi-scale feature maps and
says their channels and strides. Random initialisation offline; a local ``weights`` file
(timm or torchvision state dict, read with ``weights_only=True``) is loaded with its first
convolution adapted to the band count as timm does for ``in_chans`` (RGB filters repeated
and rescaled).
"""

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lcmap.errors import WeightsError


class TimmEncoder(nn.Module):
    """A timm encoder returning a list of feature maps, finest first.

    Args:
        model: timm model name, e.g. ``resnet18``, ``resnet50``, ``swin_tiny_patch4_window7_224``.
        in_channels: bands of the input.
        weights: optional local checkpoint for the RGB model.
        img_size: input size for models that need one (Swin).
        out_indices: which stages to return (timm's default: all).
    """

    def __init__(
        self,
        model: str,
        in_channels: int,
        weights: str | None = None,
        img_size: int | None = None,
        out_indices: tuple[int, ...] | None = None,
    ) -> None:
        import timm

        super().__init__()
        extra: dict[str, Any] = {"img_size": img_size} if img_size else {}
        if out_indices is not None:
            extra["out_indices"] = tuple(out_indices)
        self.model_name = model
        self.body = timm.create_model(
            model, pretrained=False, features_only=True, in_chans=in_channels, **extra
        )
        if weights is not None:
            self._load(Path(weights), in_channels)
        info: Any = self.body.feature_info
        self.out_channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())

    def _load(self, path: Path, in_channels: int) -> None:
        from timm.models import adapt_input_conv

        from lcmap.nets.vit import read_state_dict

        state = read_state_dict(path)
        own = self.body.state_dict()
        for key, value in list(state.items()):
            if (
                key in own
                and value.ndim == 4
                and own[key].shape[1] == in_channels != value.shape[1]
            ):
                state[key] = adapt_input_conv(in_channels, value)
        missing, _ = self.body.load_state_dict(state, strict=False)
        if len(missing) == len(own):
            raise WeightsError(f"Weights {path} do not fit encoder {self.model_name}.")

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, H, W) -> feature maps, finest first, channels-first (NCHW)."""
        feats = self.body(x)
        # Swin and other transformer encoders return NHWC maps: make every map NCHW.
        return [
            f if f.shape[1] == c else f.permute(0, 3, 1, 2)
            for f, c in zip(feats, self.out_channels, strict=True)
        ]
