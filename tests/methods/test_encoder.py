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


def test_a_patch_is_embedded_as_the_mean_of_its_cells() -> None:
    torch.manual_seed(0)
    net = build_net("encoder_unet", encoder="unet", in_channels=3).eval()
    patch = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        pooled = mean_embedding(net, patch, None)
        dense = net.embed(patch)
    assert pooled.shape == (2, dense.shape[1])
    torch.testing.assert_close(pooled, dense.mean(dim=(2, 3)))
