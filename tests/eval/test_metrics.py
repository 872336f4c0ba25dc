"""Confusion counting, cluster matching and metrics, on tiny hand-made rasters."""

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from _helpers import SPECTRA, quadrant_truth
from rasterio.transform import Affine

from lcmap.errors import (
    InputNotFoundError,
    InvalidSceneError,
    NoNodataWarning,
    OutputExistsError,
)
from lcmap.eval import evaluate, plot_confusion, read_index, write_json
from lcmap.eval.metrics import (
    ConfusionCounter,
    class_confusion,
    compute_metrics,
    match_clusters,
)
from lcmap.evaluate_index import evaluate_index

TRANSFORM = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)

# Hand case: (cluster, class) -> pixels. Cluster 2 is a second "class 1" cluster: with four
# clusters and three classes Hungarian must leave one cluster over, and it picks cluster 2.
PAIRS = {(0, 0): 5, (0, 1): 1, (1, 1): 4, (2, 1): 3, (3, 2): 2}
COUNTS = np.array([[5, 1, 0], [0, 4, 0], [0, 3, 0], [0, 0, 2]])
# Truth x predicted class (+ unmatched column) under Hungarian: 0->0, 1->1, 3->2, 2 unmatched.
HUNGARIAN_CONFUSION = np.array([[5, 0, 0, 0], [1, 4, 0, 3], [0, 0, 2, 0]])


def write_labels(
    path: Path, data: np.ndarray, *, nodata: float | None = None, transform: Any = TRANSFORM
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs="EPSG:32618",
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture
def hand_case(tmp_path: Path) -> tuple[Path, Path]:
    """A 7 x 5 prediction/truth pair holding PAIRS plus left-out pixels, shuffled.

    Left out: 10 pixels with truth 255 (ignored), 5 with prediction 255 (nodata; truth 0),
    5 with truth 7 (ignored only when asked).
    """
    pairs = [pair for pair, n in PAIRS.items() for _ in range(n)]
    pairs += [(1, 255)] * 10 + [(255, 0)] * 5 + [(2, 7)] * 5
    order = np.random.default_rng(3).permutation(len(pairs))
    grid = np.array(pairs, dtype=np.uint8)[order].reshape(5, 7, 2)
    pred = write_labels(tmp_path / "pred.tif", grid[..., 0])
    truth = write_labels(tmp_path / "truth.tif", grid[..., 1])
    return pred, truth


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


def test_match_clusters_fewer_clusters_than_classes() -> None:
    counts = np.array([[0, 9, 1], [2, 0, 7]])
    assert match_clusters([4, 8], [0, 1, 2], counts, "hungarian") == {4: 1, 8: 2}
    confusion = class_confusion([4, 8], [0, 1, 2], counts, {4: 1, 8: 2}, [0, 1, 2])
    metrics = compute_metrics(confusion)
    assert metrics.iou[0] == 0.0  # class 0 got no cluster: present, so it counts in mIoU
    assert metrics.miou == pytest.approx((0 + 9 / 10 + 7 / 10) / 3)


def test_absent_class_is_nan_and_left_out_of_means() -> None:
    confusion = np.array([[4, 1, 0], [0, 0, 0]])  # class 1 absent, one pixel predicted as it
    m = compute_metrics(confusion)
    assert m.iou[0] == pytest.approx(0.8)
    assert math.isnan(m.iou[1]) and math.isnan(m.f1[1])
    assert m.precision[1] == 0.0
    assert m.miou == pytest.approx(0.8)


def test_counter_large_label_ids_match_small_path() -> None:
    rng = np.random.default_rng(0)
    pred = rng.choice(np.array([3, 1000, 65000], dtype=np.uint16), size=500)
    truth = rng.integers(0, 4, size=500).astype(np.uint16)
    counter = ConfusionCounter()
    counter.add(pred[:200], truth[:200])
    counter.add(pred[200:], truth[200:])
    clusters, classes, counts = counter.matrix()
    assert clusters.tolist() == [3, 1000, 65000]
    assert classes.tolist() == [0, 1, 2, 3]
    for i, c in enumerate(clusters):
        for j, t in enumerate(classes):
            assert counts[i, j] == np.sum((pred == c) & (truth == t))


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
    with pytest.raises(InputNotFoundError, match="does not exist"):
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


def test_json_report_content(hand_case: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth, ignore=(7, 255), class_names=["a", "b", "c", "d"])
    out = write_json(result, tmp_path / "report.json")
    data = json.loads(out.read_text())
    assert data["match"] == "hungarian"
    assert data["ignore"] == [7, 255]
    assert data["pixels"] == 15
    assert data["accuracy"] == pytest.approx(11 / 15, abs=1e-6)
    assert data["mapping"] == {"0": 0, "1": 1, "2": None, "3": 2}
    assert [c["name"] for c in data["classes"]] == ["a", "b", "c", "d"]
    assert data["classes"][1]["clusters"] == [1]
    assert data["classes"][3]["iou"] is None  # NaN -> null, valid JSON
    assert data["confusion"]["matrix"][1] == [1, 4, 0, 0, 3]
    assert data["cluster_counts"]["matrix"][2] == [0, 3, 0, 0]
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_json(result, out)
    write_json(result, out, overwrite=True)


def test_plot_writes_png(tmp_path: Path) -> None:
    out = plot_confusion(HUNGARIAN_CONFUSION, ["a", "b", "c"], tmp_path / "cm.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*part"))  # no temporary file left behind
    with pytest.raises(OutputExistsError):
        plot_confusion(HUNGARIAN_CONFUSION, ["a", "b", "c"], out)


# --------------------------------------------------------------------------- index


def _write_index(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["set,name,scene,truth,classes"]
    lines += [f'demo,{name},{scene},{truth},"a,b,c,d"' for name, scene, truth in rows]
    index = tmp_path / "index.csv"
    index.write_text("\n".join(lines) + "\n")
    return index


def test_read_index_resolves_paths_and_reports_missing_files(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    for f in ("s/one.tif", "t1.tif"):
        (tmp_path / f).write_bytes(b"")
    index = _write_index(tmp_path, [("one", "s/one.tif", "t1.tif")])
    (entry,) = read_index(index)
    assert entry.scene == tmp_path / "s" / "one.tif" and entry.classes == ["a", "b", "c", "d"]
    index = _write_index(tmp_path, [("two", "s/two.tif", "t1.tif")])
    with pytest.raises(InputNotFoundError, match=r"line 2 lists scene .*two.tif"):
        read_index(index)
    (tmp_path / "bad.csv").write_text("name,scene\nx,y\n")
    with pytest.raises(InvalidSceneError, match=r"lacks \['set', 'truth', 'classes'\]"):
        read_index(tmp_path / "bad.csv")


def test_evaluate_index_pools_after_per_scene_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scenes whose cluster ids mean different classes: per-scene matching, then sum."""
    import lcmap.api

    truth = np.array([[0, 0, 1, 1, 2], [0, 0, 1, 2, 2], [3, 3, 3, 2, 2]], np.uint8)
    # Scene one: cluster = class + 1; scene two: reversed ids and one wrong pixel.
    maps = {"one": truth + 1, "two": (3 - truth).astype(np.uint8)}
    maps["two"][0, 0] = 2
    for name in maps:
        write_labels(tmp_path / f"{name}_scene.tif", truth)
        write_labels(tmp_path / f"{name}_truth.tif", truth)
    index = _write_index(
        tmp_path, [(n, f"{n}_scene.tif", f"{n}_truth.tif") for n in ("one", "two")]
    )
    calls: list[dict[str, Any]] = []

    def fake_segment(scene: Path, output: Path, **kwargs: Any) -> None:
        calls.append(kwargs)
        warnings.warn(f"{scene} declares no nodata", NoNodataWarning, stacklevel=2)
        write_labels(Path(output), maps[Path(scene).name.split("_")[0]])

    monkeypatch.setattr(lcmap.api, "segment", fake_segment)
    done: list[tuple[int, int]] = []
    with pytest.warns(NoNodataWarning) as record:
        result = evaluate_index(
            index,
            method="toy",
            seed=5,
            segment_options={"tile": 64},
            progress=lambda d, t: done.append((d, t)),
        )
    assert len(record) == 1  # the same lcmap warning from every scene is shown once
    assert [c["classes"] for c in calls] == [4, 4]  # default k = number of truth classes
    assert calls[0] == {"method": "toy", "classes": 4, "seed": 5, "overwrite": True, "tile": 64}
    assert done == [(1, 2), (2, 2)]
    one, two = result.scenes
    assert one.result.accuracy == 1.0
    assert two.result.accuracy == pytest.approx(14 / 15)
    np.testing.assert_array_equal(result.confusion, one.result.confusion + two.result.confusion)
    assert result.accuracy == pytest.approx(29 / 30)
    assert result.class_names == ["a", "b", "c", "d"]


@pytest.mark.slow  # 5-12 s on 2 busy cores, most of it in k-means fitting
def test_evaluate_index_with_kmeans(tmp_path: Path) -> None:
    """Real segmentation of two small quadrant scenes: k-means recovers the quadrants."""
    rows = []
    truth = quadrant_truth(45, 67)
    for i in range(2):
        noise = np.random.default_rng(i).normal(0, 3, (45, 67, 3))
        image = np.clip(SPECTRA[truth, :3] + noise, 1, 255).astype(np.uint8).transpose(2, 0, 1)
        with rasterio.open(
            tmp_path / f"scene{i}.tif",
            "w",
            driver="GTiff",
            width=67,
            height=45,
            count=3,
            dtype="uint8",
            crs="EPSG:32618",
            transform=TRANSFORM,
            nodata=0,
        ) as dst:
            dst.write(image)
        write_labels(tmp_path / f"truth{i}.tif", truth)
        rows.append((f"s{i}", f"scene{i}.tif", f"truth{i}.tif"))
    result = evaluate_index(
        _write_index(tmp_path, rows),
        method="kmeans",
        seed=0,
        segment_options={"options": {"samples": 5000}},
    )
    assert len(result.scenes) == 2
    # Quadrant edges may go either way (k-means features can include smoothed bands).
    assert result.accuracy > 0.95
    assert result.miou > 0.9
    assert all(s.result.accuracy > 0.95 for s in result.scenes)
