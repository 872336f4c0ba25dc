"""``lcmap.methods.base``: what every method shares: its window, its labels, its options."""

from dataclasses import dataclass

import pytest
import torch

from lcmap.errors import InvalidSceneError
from lcmap.methods.base import (
    UNLABELLED,
    BandFittedSegmenter,
    FixedWindows,
    LabelledPatches,
    Window,
    best_class,
    training_labels,
)


def test_the_best_class_is_argmax_on_ties_nan_and_views() -> None:
    """``best_class`` (the maps' labels) gives ``argmax``'s indices: the lowest class on ties,
    NaN as the highest, on slices (the blended scores' crop) and every float type."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (3, 7, 40, 50), generator=gen).float()  # many ties
    scores[0, :, 0, 0] = float("nan")
    scores[1, 3, 2, 2] = float("nan")
    for s in (scores, scores[:, :, 3:, 5:], scores.double(), scores.to(torch.bfloat16)):
        assert torch.equal(best_class(s), s.argmax(dim=1))


@pytest.mark.parametrize(("size", "stride"), [(224, 0), (224, 100), (0, 1), (-14, 14)])
def test_a_window_whose_stride_does_not_divide_it_is_refused(size: int, stride: int) -> None:
    with pytest.raises(ValueError, match="positive divisor"):
        Window(size, stride)


def test_a_windowed_method_needs_the_window_less_one_stride_around_a_tile() -> None:
    class Windowed(FixedWindows):
        _window = Window(224, 56)

    assert Windowed().halo == 168 and Windowed().window == Window(224, 56)


def test_training_labels_mask_the_nodata_and_refuse_unknown_classes() -> None:
    labels = torch.tensor([[0, 1], [2, UNLABELLED]])
    valid = torch.tensor([[True, False], [True, True]])
    out, labelled = training_labels(LabelledPatches(torch.zeros(2, 3, 2, 2), labels, valid), 3)
    assert out.tolist() == [[0, UNLABELLED], [2, UNLABELLED]] and labelled == 2
    with pytest.raises(InvalidSceneError, match="class 2 but the model has 2"):
        training_labels(LabelledPatches(torch.zeros(2, 3, 2, 2), labels), 2)
    with pytest.raises(InvalidSceneError, match="no labelled pixel"):
        nothing_valid = torch.zeros(2, 2, dtype=torch.bool)
        training_labels(LabelledPatches(torch.zeros(2, 3, 2, 2), labels, nothing_valid), 3)


def test_a_band_fitted_method_records_its_band_count_once_fitted() -> None:
    @dataclass(frozen=True)
    class Options:
        num_classes: int = 4
        in_channels: int | None = None

    class Fitted(BandFittedSegmenter):
        info = None  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.cfg, self._k, self._in_channels = Options(), 4, None

        halo = 0

        def predict(self, batch: torch.Tensor) -> torch.Tensor:
            return batch

        def state_dict(self) -> dict[str, torch.Tensor]:
            return {}

        def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
            pass

    method = Fitted()
    assert method.num_classes == 4 and method.config()["in_channels"] is None
    method._in_channels = 6
    assert method.in_channels == 6 and method.config() == {"num_classes": 4, "in_channels": 6}
