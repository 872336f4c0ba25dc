"""``lcmap.nets.unet``: the receptive field the halos are planned with is the network's real one,
padding keeps the pixels, and the 8 symmetries of the square are undone exactly."""

import pytest
import torch

from lcmap.nets.unet import UNet, dihedral, dihedral_mean, pad_to_multiple, receptive_field


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("decoder", [False, True])
def test_the_receptive_field_is_the_networks_own(depth: int, decoder: bool) -> None:
    """One input pixel changed: the outputs that change span at most the receptive field, so a
    halo of half of it makes tiles exact (an underestimate fails here)."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, width=2, depth=depth, embed_dim=3, out_channels=2).eval()
    size, centre = 256, 128
    x = torch.rand(1, 1, size, size) - 0.5
    y = x.clone()
    y[..., centre, centre] += 10.0
    with torch.no_grad():
        a, b = (net(t)[1] if decoder else net.encode(t)[0] for t in (x, y))
    stride = 1 if decoder else net.stride
    rows = (a - b).abs().amax(dim=(0, 1, 3)).nonzero().flatten()
    span = (int(rows.max()) - int(rows.min()) + 1) * stride  # in input pixels
    field = receptive_field(depth, decoder)
    assert stride <= span <= field + stride


def test_padding_reaches_the_multiple_and_keeps_every_pixel() -> None:
    x = torch.rand(2, 3, 37, 50)
    padded, h, w = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (48, 64) and (h, w) == (37, 50)
    assert torch.equal(padded[..., :h, :w], x)
    tiny, _, _ = pad_to_multiple(torch.rand(1, 1, 3, 3), 16)  # too small to reflect
    assert tiny.shape[-2:] == (16, 16)


def test_the_eight_symmetries_are_distinct_and_undone_by_the_mean() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    turned = {tuple(dihedral(x, k, f).flatten().tolist()) for k in range(4) for f in (0, 1)}
    assert len(turned) == 8
    # A per-pixel function is equivariant: the mean over the symmetries is the function itself.
    torch.testing.assert_close(dihedral_mean(lambda t: t * 2 + 1, x), x * 2 + 1)
    # A function that reads position is not: the mean differs from it.
    assert not torch.allclose(dihedral_mean(lambda t: t.cumsum(-1), x), x.cumsum(-1))
