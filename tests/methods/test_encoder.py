"""``lcmap.methods._encoder``: the window an encoder UNet maps through, checked against the
encoder, and a patch's mean embedding over its own cells."""

import pytest
import torch

from lcmap.errors import InvalidOptionError
from lcmap.methods._encoder import mean_embedding, window_geometry
from lcmap.methods.base import Window
from lcmap.nets import build_net


def test_the_window_defaults_to_the_encoders_size_and_half_a_window_stride() -> None:
    assert window_geometry("resnet18-unet", None, None) == Window(128, 64)
    assert window_geometry("swin-unet", None, None) == Window(224, 112)
    assert window_geometry("unet", 96, 32) == Window(96, 32)


@pytest.mark.parametrize(
    ("encoder", "crop", "stride", "message"),
    [
        ("swin-unet", 128, None, "takes 224 px windows"),
        ("unet", 100, None, "multiple of 32"),
        ("unet", 128, 48, "must divide"),
    ],
)
def test_a_window_the_encoder_cannot_take_is_refused(encoder, crop, stride, message) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        window_geometry(encoder, crop, stride)


def test_a_fixed_size_encoder_sees_a_large_patch_window_by_window() -> None:
    """An encoder that takes one window size only is never given another: a patch of two by
    two windows is embedded as the mean of its four windows' embeddings."""
    torch.manual_seed(0)
    net = build_net("encoder_unet", encoder="unet", in_channels=3).eval()
    patch = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        pooled = mean_embedding(net, patch, 32)
        quarters = [
            net.embed(patch[..., r : r + 32, c : c + 32]).mean(dim=(2, 3))
            for r in (0, 32)
            for c in (0, 32)
        ]
        whole = mean_embedding(net, patch, None)
    torch.testing.assert_close(pooled, torch.stack(quarters).mean(0))
    assert not torch.allclose(pooled, whole)  # the whole patch at once is another embedding
