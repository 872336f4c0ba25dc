"""``lcmap.methods._contrastive``: NT-Xent by hand, and views whose pixels can be paired."""

import math

import pytest
import torch
import torch.nn.functional as F

from lcmap.methods._contrastive import (
    _dihedral_grid,
    augmentations,
    band_jitter,
    make_views,
    nt_xent,
    sample_at,
    simsiam,
    view_points,
)


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


def test_simsiam_on_a_case_worked_out_by_hand():
    # Each prediction against the other view's projection: cosines 1/sqrt(2) and 1 per side,
    # so the loss is -(1/sqrt(2) + 1) / 2; the projections get no gradient (stop-gradient).
    p1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    p2 = torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    z1 = torch.tensor([[0.0, 3.0], [1.0, 1.0]], requires_grad=True)
    z2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]], requires_grad=True)
    loss, _ = simsiam(p1, p2, z1, z2)
    assert float(loss.detach()) == pytest.approx(-(1 / math.sqrt(2) + 1) / 2, rel=1e-5)
    loss.backward()
    assert p1.grad is not None and p2.grad is not None
    assert z1.grad is None and z2.grad is None
    # Spread: about 1 for projections spread over the sphere, 0 when all are one point.
    gen = torch.Generator().manual_seed(0)
    spread = simsiam(*(torch.randn(256, 64, generator=gen) for _ in range(4)))[1]["spread"]
    assert spread == pytest.approx(1.0, abs=0.1)
    same = torch.ones(8, 64)
    assert simsiam(same, same, same, same)[1]["spread"] == pytest.approx(0.0, abs=1e-6)


def test_views_keep_the_pixels_of_a_pair_aligned():
    s = 32
    centres = (torch.arange(s) + 0.5) / s * 2 - 1
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    window = torch.stack([xs, ys])[None].repeat(6, 1, 1, 1)  # each pixel holds its own (x, y)
    gen = torch.Generator().manual_seed(3)
    views, grids = make_views(window, 0.3, gen, augment=False)
    assert views.shape == (2, 6, 2, s, s) and grids.shape == (2, 6, s, s, 2)
    coords, ok = view_points(grids, 40, gen)
    assert bool(ok.any())
    a = sample_at(views[0], coords[0])[ok]
    b = sample_at(views[1], coords[1])[ok]
    # The same place of the window, seen in two differently cropped, rotated, flipped views.
    assert torch.allclose(a, b, atol=2.5 / s)
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


def test_band_jitter_changes_each_band_on_its_own_within_its_strength():
    # Four bands holding the same constant: a per-band gain g in 1 +- s and offset o in +- s
    # give g * 1 + o in [1 - 2s, 1 + 2s], different between bands (colour changes, not only
    # brightness). Expected shares: coloured 0.8 x 0.8; grey (every band the bands' mean) after
    # a jitter 0.8 x 0.2; untouched 0.2 (grey or not, the bands stay 1).
    s, trials = 0.4, 400
    gen = torch.Generator().manual_seed(0)
    view = torch.ones(4, 8, 8)
    counts = {"untouched": 0, "grey": 0, "coloured": 0}
    for _ in range(trials):
        out = band_jitter(view, s, gen)
        per_band = out[:, 0, 0]
        assert torch.equal(out, per_band[:, None, None].expand_as(out))  # no spatial change
        assert bool(((per_band >= 1 - 2 * s - 1e-6) & (per_band <= 1 + 2 * s + 1e-6)).all())
        if torch.equal(per_band, torch.ones(4)):
            counts["untouched"] += 1
        elif torch.allclose(per_band, per_band[0].expand(4)):
            counts["grey"] += 1
        else:
            counts["coloured"] += 1
    assert 0.55 < counts["coloured"] / trials < 0.73
    assert 0.09 < counts["grey"] / trials < 0.23
    assert 0.13 < counts["untouched"] / trials < 0.27


def test_views_without_colour_jitter_are_drawn_as_before():
    # colour_jitter=0 draws nothing more: models pre-trained before the option reproduce.
    window = torch.rand(3, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    a = make_views(window, 0.3, torch.Generator().manual_seed(7))
    b = make_views(window, 0.3, torch.Generator().manual_seed(7), colour_jitter=0.0)
    c = make_views(window, 0.3, torch.Generator().manual_seed(7), colour_jitter=0.4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert "colour_jitter" not in augmentations(0.0)
    assert augmentations(0.4)["colour_jitter"]["gain"] == [0.6, 1.4]
