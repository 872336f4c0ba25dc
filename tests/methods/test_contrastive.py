"""``lcmap.methods._contrastive``: NT-Xent by hand, and views whose grids say where their pixels
came from."""

import math

import pytest
import torch
import torch.nn.functional as F

from lcmap.methods._contrastive import _dihedral_grid, augmentations, make_views, nt_xent


def _by_hand(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = torch.nn.functional.normalize(torch.cat([z1, z2]).double(), dim=1)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]  # never itself
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in others)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    return total / (2 * n)


def test_nt_xent_on_a_case_worked_out_by_hand():
    # Two pairs of orthogonal unit vectors: for each anchor the positive has cosine 1, the
    # two other views cosine 0: l = -log(e^(1/t) / (e^(1/t) + 2)) for every anchor.
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # lengths do not matter: cosine
    for t in (0.1, 0.5, 0.7):
        expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
        assert float(nt_xent(z1, z2, t)) == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("t", [0.1, 0.7])
def test_nt_xent_matches_the_formula_on_random_vectors(t):
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(_by_hand(z1, z2, t), rel=1e-4)
    # Swapping the views changes nothing; a lower temperature sharpens the loss.
    assert float(nt_xent(z2, z1, t)) == pytest.approx(float(nt_xent(z1, z2, t)), rel=1e-5)


def test_a_views_grid_says_where_each_of_its_pixels_came_from():
    s = 32
    centres = (torch.arange(s) + 0.5) / s * 2 - 1
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    window = torch.stack([xs, ys])[None].repeat(6, 1, 1, 1)  # each pixel holds its own (x, y)
    gen = torch.Generator().manual_seed(3)
    views, grids = make_views(window, 0.3, gen, augment=False)
    assert views.shape == (2, 6, 2, s, s) and grids.shape == (2, 6, s, s, 2)
    # Bilinear sampling of a linear ramp is exact between the first and last pixel centres.
    inside = (grids.abs() <= 1 - 1 / s).all(dim=-1)
    assert bool(inside.any())
    held = views.permute(0, 1, 3, 4, 2)  # (2, N, S, S, 2): the window place each pixel holds
    assert torch.allclose(held[inside], grids[inside], atol=1e-4)
    # And the views really differ (crops and symmetries).
    assert not torch.allclose(views[0], views[1])


def test_the_symmetries_of_a_view_are_applied_to_its_grid_as_to_an_image():
    gen = torch.Generator().manual_seed(1)
    window = torch.rand(1, 3, 16, 16, generator=gen)
    centres = (torch.arange(16) + 0.5) / 16 * 2 - 1
    identity = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)
    for k in range(4):
        for flip in (False, True):
            grid = _dihedral_grid(identity, k, flip)
            view = F.grid_sample(window, grid[None], mode="bilinear", align_corners=False)
            expected = torch.rot90(window, k, dims=(-2, -1))
            expected = torch.flip(expected, dims=(-1,)) if flip else expected
            assert torch.allclose(view, expected, atol=1e-5)


def test_the_model_file_records_the_augmentations():
    assert set(augmentations()) == {
        "random_resized_crop",
        "dihedral",
        "gaussian_blur",
        "brightness_contrast",
        "illumination_ramp",
        "random_erasing",
    }
