"""``lcmap.methods._supervised``: the training loop every fine-tuned head shares (Ghosh et al.'s
class-weighted cross-entropy), its schedule, and the labels it refuses."""

import pytest
import torch

from lcmap.errors import InvalidSceneError
from lcmap.methods._supervised import IGNORE_INDEX, Schedule, train_classifier
from lcmap.methods.base import LabelledPatches


def _schedule(**changes: object) -> Schedule:
    base = {
        "batch_size": 4,
        "steps": 30,
        "epochs": None,
        "lr": 0.05,
        "weight_decay": 0.0,
        "class_weighting": "inverse",
        "seed": 0,
    }
    return Schedule(**{**base, **changes})  # type: ignore[arg-type]


def _patches() -> LabelledPatches:
    """Two classes told apart by the one band's sign, a few pixels unlabelled."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 1, 8, 8, generator=gen)
    y = (x[:, 0] > 0).long()
    y[:, 0, 0] = IGNORE_INDEX
    return LabelledPatches(x, y)


def _train(schedule: Schedule, patches=None):
    torch.manual_seed(0)
    head = torch.nn.Conv2d(1, 2, 1)
    calls = []
    losses = train_classifier(
        head,
        head.parameters(),
        head.train,
        patches or _patches(),
        2,
        schedule,
        lambda x, y, gen: (x, y),
        torch.device("cpu"),
        progress=lambda done, total: calls.append((done, total)),
    )
    return head, losses, calls


def test_the_loss_falls_and_the_head_learns_the_classes() -> None:
    head, losses, calls = _train(_schedule())
    assert losses[-1] < 0.5 * losses[0]
    assert not head.training  # back in eval mode, ready to map
    x, y, _ = _patches()
    pred = head(x).argmax(dim=1)
    keep = y != IGNORE_INDEX
    assert (pred[keep] == y[keep]).float().mean() > 0.95
    assert calls[-1] == (30, 30)


def test_epochs_count_passes_over_the_patches() -> None:
    _, losses, calls = _train(_schedule(epochs=2))  # 12 patches of 4: 3 steps an epoch
    assert len(losses) == 6 and calls[-1] == (6, 6)


def test_the_same_seed_trains_the_same_head() -> None:
    a, _, _ = _train(_schedule())
    b, _, _ = _train(_schedule())
    assert torch.equal(a.weight, b.weight)


def test_labels_outside_the_classes_or_none_at_all_are_refused() -> None:
    x, y, _ = _patches()
    with pytest.raises(InvalidSceneError, match="class 5"):
        _train(_schedule(), LabelledPatches(x, torch.full_like(y, 5)))
    with pytest.raises(InvalidSceneError, match="no labelled pixel"):
        _train(_schedule(), LabelledPatches(x, torch.full_like(y, IGNORE_INDEX)))
