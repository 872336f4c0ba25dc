"""``lcmap.eval.metrics``: confusion counting, cluster matching and the metrics, by hand."""

import math

import numpy as np
import pytest

from lcmap.eval.metrics import (
    ConfusionCounter,
    class_confusion,
    compute_metrics,
    match_clusters,
)


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


# --------------------------------------------------------------------------- index
