"""``lcmap.methods._distill``: STEGO's correspondence-distillation loss (Hamilton et al.) by
hand, its zero clamp, channel dropout and a reproducible head."""

import math

import pytest
import torch

from lcmap.methods._distill import (
    StegoHead,
    centre_correlation,
    channel_dropout,
    correlation,
    correspondence_loss,
)


def test_correspondence_loss_matches_hand_computation() -> None:
    # Features: f1 = (1,0), (0,1); f2 = (1,0), (0.6,0.8)  ->  F = [[1, .6], [0, .8]].
    # Centred (row means .8, .4; global mean .6): [[.8, .4], [.2, 1.]].
    f1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    f2 = torch.tensor([[1.0, 0.6], [0.0, 0.8]]).view(1, 2, 1, 2)
    # Codes: c1 = (1,0), (0,1); c2 = (1,1)/sqrt2, (-1,0)  ->  S = [[.707, -1], [.707, 0]].
    c1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    c2 = torch.tensor([[1.0, -1.0], [1.0, 0.0]]).view(1, 2, 1, 2)
    shift = 0.3
    # Zero clamp keeps S+ = [[.707, 0], [.707, 0]]; loss = -mean(S+ * (Fc - b)).
    expected = -(math.sqrt(0.5) * (0.8 - shift) + math.sqrt(0.5) * (0.2 - shift)) / 4
    got = correspondence_loss(f1, f2, c1, c2, shift)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    fd = centre_correlation(torch.tensor([[1.0, 0.6], [0.0, 0.8]]).view(1, 2, 1, 1, 2))
    assert fd.flatten().tolist() == pytest.approx([0.8, 0.4, 0.2, 1.0])


def test_zero_clamp_stops_gradient_of_negative_code_correlations() -> None:
    f = torch.tensor([[1.0, 0.0]]).view(1, 2, 1, 1)
    c1 = torch.tensor([[1.0, 0.0]]).view(1, 2, 1, 1).requires_grad_()
    c2 = torch.tensor([[-1.0, 0.2]]).view(1, 2, 1, 1).requires_grad_()
    correspondence_loss(f, f, c1, c2, 0.1).backward()
    assert c1.grad is not None and float(c1.grad.abs().sum()) == 0.0


def test_correlation_is_the_cosine_of_every_pair_of_positions() -> None:
    a = torch.randn(2, 5, 3, 4)
    fd = correlation(a, a)
    assert fd.shape == (2, 3, 4, 3, 4)
    diagonal = fd.reshape(2, 12, 12).diagonal(dim1=1, dim2=2)
    torch.testing.assert_close(diagonal, torch.ones(2, 12))


def test_channel_dropout_drops_whole_channels_and_keeps_the_mean() -> None:
    x = torch.ones(64, 32, 3, 3)
    out = channel_dropout(x, 0.25, torch.Generator().manual_seed(0))
    per_channel = out.flatten(2)
    assert bool((per_channel.amin(dim=2) == per_channel.amax(dim=2)).all())  # whole channels
    assert float(out.mean()) == pytest.approx(1.0, abs=0.05)
    assert channel_dropout(x, 0.0, torch.Generator()) is x


def test_the_head_starts_the_same_from_the_same_seed() -> None:
    a, b = StegoHead(8, 4), StegoHead(8, 4)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and a(x).shape == (1, 4, 5, 5)
        assert bool(a(x).isfinite().all())
