"""``lcmap.eval.evaluate``: a map scored against a truth raster window by window, as by hand;
nodata, ignored values, class names and bad inputs."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from lcmap.errors import (
    InputNotFoundError,
    InvalidSceneError,
)
from lcmap.eval import evaluate
from tests.eval._cases import COUNTS, HUNGARIAN_CONFUSION, write_labels


@pytest.mark.parametrize("window_size", [1, 2, 3, 4, 1024])
def test_evaluate_equals_hand_computed_confusion(
    hand_case: tuple[Path, Path], window_size: int
) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth, ignore=(255, 7), window_size=window_size)

    assert result.class_ids == [0, 1, 2]
    assert result.cluster_ids == [0, 1, 2, 3]
    np.testing.assert_array_equal(result.counts, COUNTS)
    assert result.mapping == {0: 0, 1: 1, 2: None, 3: 2}
    np.testing.assert_array_equal(result.confusion, HUNGARIAN_CONFUSION)
    assert result.pred_nodata_pixels == 5
    m = result.metrics
    assert m.pixels == 15
    assert m.accuracy == pytest.approx(11 / 15)
    np.testing.assert_allclose(m.iou, [5 / 6, 4 / 8, 1.0])
    np.testing.assert_allclose(m.f1, [10 / 11, 8 / 12, 1.0])
    np.testing.assert_allclose(m.precision, [5 / 6, 1.0, 1.0])
    np.testing.assert_allclose(m.recall, [1.0, 4 / 8, 1.0])
    assert m.miou == pytest.approx((5 / 6 + 0.5 + 1) / 3)
    assert m.mean_f1 == pytest.approx((10 / 11 + 8 / 12 + 1) / 3)


@pytest.mark.parametrize(
    ("match", "mapping", "correct"),
    [
        ("hungarian", {0: 0, 1: 1, 2: None, 3: 2}, 11),  # leftover cluster 2 counts as wrong
        ("majority", {0: 0, 1: 1, 2: 1, 3: 2}, 14),  # many to one
        ("none", {0: 0, 1: 1, 2: 2, 3: None}, 9),  # labels taken as classes
    ],
)
def test_match_methods_on_hand_case(
    hand_case: tuple[Path, Path], match: Any, mapping: dict[int, int | None], correct: int
) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth, match=match, ignore=(255, 7), window_size=3)
    assert result.mapping == mapping
    assert result.accuracy == pytest.approx(correct / 15)
    assert int(np.trace(result.confusion[:, :3])) == correct


def test_truth_ignore_values(hand_case: tuple[Path, Path]) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth)  # 7 is a class unless ignored
    assert result.class_ids == [0, 1, 2, 7]
    assert result.metrics.pixels == 20
    with pytest.raises(InvalidSceneError, match=r"has labels \[7\].*ignore=7"):
        evaluate(pred, truth, class_names=["a", "b", "c"])


def test_class_names_cover_absent_classes(hand_case: tuple[Path, Path]) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth, ignore=(255, 7), class_names=["a", "b", "c", "d"])
    assert result.class_ids == [0, 1, 2, 3]
    assert math.isnan(result.metrics.iou[3])
    assert result.miou == pytest.approx((5 / 6 + 0.5 + 1) / 3)


def test_declared_pred_nodata_replaces_default(tmp_path: Path) -> None:
    pred = write_labels(tmp_path / "p.tif", np.array([[9, 255, 1]], np.uint8), nodata=9)
    truth = write_labels(tmp_path / "t.tif", np.array([[0, 0, 1]], np.uint8))
    result = evaluate(pred, truth)
    assert result.cluster_ids == [1, 255]
    assert result.metrics.pixels == 2 and result.pred_nodata_pixels == 1


def test_pred_mask_band_and_truth_nodata_are_left_out(tmp_path: Path) -> None:
    pred = write_labels(tmp_path / "p.tif", np.array([[1, 1, 2, 2, 255]], np.uint8))
    with rasterio.open(pred, "r+") as dst:
        dst.write_mask(np.array([[255, 0, 255, 255, 255]], np.uint8))  # pixel 1 masked
    truth = write_labels(tmp_path / "t.tif", np.array([[1, 1, 2, 9, 2]], np.uint8), nodata=9)
    result = evaluate(pred, truth)
    assert result.metrics.pixels == 2  # pixel 1 masked, 3 truth nodata, 4 pred 255
    assert result.pred_nodata_pixels == 2
    assert result.accuracy == 1.0


def test_negative_truth_label_needs_ignore(tmp_path: Path) -> None:
    pred = write_labels(tmp_path / "p.tif", np.array([[0, 1, 1]], np.int16))
    truth = write_labels(tmp_path / "t.tif", np.array([[0, -1, 1]], np.int16))
    with pytest.raises(InvalidSceneError, match=r"negative label -1.*ignore="):
        evaluate(pred, truth)
    assert evaluate(pred, truth, ignore=(-1,)).accuracy == 1.0


def test_grid_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    truth = write_labels(tmp_path / "t.tif", np.zeros((5, 7), np.uint8))
    smaller = write_labels(tmp_path / "p.tif", np.zeros((5, 6), np.uint8))
    with pytest.raises(InvalidSceneError, match=r"not on one grid \(size 6x5 vs 7x5.*gdalwarp"):
        evaluate(smaller, truth)
    shifted = write_labels(
        tmp_path / "s.tif",
        np.zeros((5, 7), np.uint8),
        transform=Affine(2.0, 0.0, 500010.0, 0.0, -2.0, 4e6),
    )
    with pytest.raises(InvalidSceneError, match="transform"):
        evaluate(shifted, truth)


def test_bad_inputs(tmp_path: Path) -> None:
    truth = write_labels(tmp_path / "t.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputNotFoundError, match="not found"):
        evaluate(tmp_path / "missing.tif", truth)
    floats = write_labels(tmp_path / "f.tif", np.zeros((2, 2), np.float32))
    with pytest.raises(InvalidSceneError, match="float32 values; expected integer labels"):
        evaluate(floats, truth)
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    with pytest.raises(InvalidSceneError, match="not a readable raster"):
        evaluate(text, truth)
    everything_ignored = write_labels(tmp_path / "i.tif", np.full((2, 2), 255, np.uint8))
    with pytest.raises(InvalidSceneError, match="no pixel to evaluate"):
        evaluate(truth, everything_ignored)


def _named(path: Path, names: list[str]) -> Path:
    import json

    with rasterio.open(path, "r+") as dst:
        dst.update_tags(CLASS_NAMES=json.dumps(names))
    return path


def test_a_named_map_is_scored_by_its_class_names(hand_case: tuple[Path, Path]) -> None:
    pred, truth = hand_case
    # The hand case's clusters 0, 1 and 3 are its classes 0, 1 and 2; named in another order
    # and spelling, and cluster 2 named as nothing the truth has.
    _named(pred, ["Built_up", "trees", "cloud", "water"])
    names = ["built-up", "Trees", "water"]
    result = evaluate(pred, truth, match="names", ignore=(255, 7), class_names=names)
    assert result.mapping == {0: 0, 1: 1, 2: None, 3: 2}
    assert result.accuracy == pytest.approx(11 / 15)  # cluster 2's 3 pixels, 1 confused
    # Matching by pixels would call cluster 0 "built-up" too, but by name a map whose names
    # disagree with its pixels scores what it says.
    _named(pred, ["water", "trees", "cloud", "built-up"])
    swapped = evaluate(pred, truth, match="names", ignore=(255, 7), class_names=names)
    assert swapped.mapping == {0: 2, 1: 1, 2: None, 3: 0}
    assert swapped.accuracy == pytest.approx(4 / 15)


def test_matching_by_names_without_names_is_one_clear_error(
    hand_case: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lcmap.eval as lcmap_eval

    pred, truth = hand_case

    def unread(*_: Any, **__: Any) -> None:
        raise AssertionError("no pixel should be read before the names are checked")

    with monkeypatch.context() as m:
        m.setattr(lcmap_eval, "count_rasters", unread)
        with pytest.raises(InvalidSceneError, match=r"has no class names.*lcmap classes"):
            evaluate(pred, truth, match="names", class_names=["a", "b", "c"])
        _named(pred, ["class 0", "class 1", "class 2", "class 3"])  # lcmap's placeholders
        with pytest.raises(InvalidSceneError, match="has no class names"):
            evaluate(pred, truth, match="names", class_names=["a", "b", "c"])
        _named(pred, ["a", "b", "c", "d"])
        with pytest.raises(InvalidSceneError, match=r"classes of .* have no names.*--class-names"):
            evaluate(pred, truth, match="names", ignore=(255, 7))
    with pytest.raises(InvalidSceneError, match=r"no class name of .*\(a, b, c, d\)"):
        evaluate(pred, truth, match="names", ignore=(255, 7), class_names=["x", "y", "z"])
