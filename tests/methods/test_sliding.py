"""``lcmap.methods._sliding``: a fixed-window network over tiles of any size, blended so that a
pixel's score does not depend on the tile it falls in."""

import torch

from lcmap.methods._sliding import hann_pixels, mirror_pad, sliding_scores
from lcmap.methods.base import Window


def _net(x: torch.Tensor) -> torch.Tensor:
    """A window-dependent 'network': each pixel's score mixes in its window's mean."""
    return torch.cat([x + x.mean(dim=(-2, -1), keepdim=True), -x], dim=1)


def test_a_pixels_score_is_the_same_in_any_tile_on_the_scene_grid() -> None:
    torch.manual_seed(0)
    window = Window(16, 4)
    scene = torch.rand(1, 1, 64, 64)
    whole = sliding_scores(_net, scene, window, chunk=7)
    # A tile starting on the stride grid, with the halo (size - stride) around its core.
    halo, top, left = window.halo, 20, 28
    tile = scene[..., top - halo : top + 16 + halo, left - halo : left + 16 + halo]
    part = sliding_scores(_net, tile, window, chunk=64)
    core = part[..., halo : halo + 16, halo : halo + 16]
    torch.testing.assert_close(core, whole[..., top : top + 16, left : left + 16])


def test_the_chunk_size_does_not_change_the_scores() -> None:
    x = torch.rand(2, 1, 40, 30)
    a = sliding_scores(_net, x, Window(16, 8), chunk=1)
    b = sliding_scores(_net, x, Window(16, 8), chunk=1000)
    torch.testing.assert_close(a, b)
    assert a.shape == (2, 2, 40, 30)


def test_mirror_padding_reaches_any_size_and_keeps_the_pixels() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = mirror_pad(x, 9, 11)
    assert padded.shape[-2:] == (11, 14) and torch.equal(padded[..., :2, :3], x)
    assert mirror_pad(torch.ones(1, 1, 1, 1), 3, 3).shape[-2:] == (4, 4)  # too small to mirror


def test_pixels_drawn_for_fitting_are_valid_and_favour_the_window_centre() -> None:
    gen = torch.Generator().manual_seed(0)
    valid = torch.ones(32, 32, dtype=torch.bool)
    valid[:, :4] = False
    pick, coords = hann_pixels(valid, 4000, gen)  # type: ignore[misc]
    rows, cols = pick // 32, pick % 32
    assert bool(valid[rows, cols].all())
    centre = ((rows - 15.5).abs() < 8) & ((cols - 15.5).abs() < 8)
    assert centre.float().mean() > 0.5  # a quarter of the area, most of the weight
    assert coords.abs().max() < 1  # pixel centres inside the window
    assert hann_pixels(torch.zeros(8, 8, dtype=torch.bool), 5, gen) is None
