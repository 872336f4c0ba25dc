import numpy as np
import pytest

from lcmap.stitch import Stitcher, label_dtype
from lcmap.tiling import plan_tiles


def _scores_for(plan, truth_scores, tile):
    """Slice a whole-scene score cube into a tile's read window (zeros outside)."""
    k, h, w = truth_scores.shape
    out = np.zeros((k, plan.read_size, plan.read_size), dtype=np.float32)
    r, c = int(tile.read.row_off), int(tile.read.col_off)
    rs, cs = max(r, 0), max(c, 0)
    re, ce = min(r + plan.read_size, h), min(c + plan.read_size, w)
    out[:, rs - r : re - r, cs - c : ce - c] = truth_scores[:, rs:re, cs:ce]
    return out


def _stitch(plan, scores, valid, as_labels=False):
    st = Stitcher(plan, scores.shape[0])
    out = np.full((plan.height, plan.width), 77, dtype=st.dtype)
    rows_seen = []
    for tile in plan.tiles:
        s = _scores_for(plan, scores, tile)
        v = _scores_for(plan, valid[None].astype(np.float32), tile)[0] > 0
        added = st.add_labels(tile, s.argmax(0), v) if as_labels else st.add(tile, s, v)
        for row, labels in added:
            out[row : row + labels.shape[0]] = labels
            rows_seen.append((row, labels.shape[0]))
    for row, labels in st.finish():
        out[row : row + labels.shape[0]] = labels
        rows_seen.append((row, labels.shape[0]))
    return out, rows_seen


@pytest.mark.parametrize("as_labels", [False, True])
@pytest.mark.parametrize("tile,halo", [(16, 0), (16, 4), (50, 7), (200, 3), (7, 9)])
def test_stitched_labels_equal_whole_scene_argmax(as_labels, tile, halo):
    rng = np.random.default_rng(0)
    h, w, k = 61, 83, 5
    scores = rng.random((k, h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.1
    plan = plan_tiles(w, h, tile, halo)
    out, rows = _stitch(plan, scores, valid, as_labels)
    expected = scores.argmax(0).astype(np.uint8)
    expected[~valid] = 255
    np.testing.assert_array_equal(out, expected)
    # Every row is emitted exactly once, in order.
    covered = np.concatenate([np.arange(r, r + n) for r, n in rows])
    np.testing.assert_array_equal(covered, np.arange(h))


def test_label_dtype_widens_above_255_classes():
    assert label_dtype(255) == np.uint8
    assert label_dtype(256) == np.uint16


def test_stitcher_holds_one_band_of_tile_rows():
    plan = plan_tiles(300, 10_000, 64, 8)
    st = Stitcher(plan, 4)
    assert st._labels.shape == (plan.tile, plan.width)  # rows held, whatever the height


def test_tiles_out_of_order_are_refused():
    plan = plan_tiles(30, 30, 16, 2)
    st = Stitcher(plan, 3)
    ones = np.ones((plan.read_size, plan.read_size), bool)
    list(st.add_labels(plan.tiles[2], np.zeros_like(ones, np.uint8), ones))
    with pytest.raises(ValueError, match="row-major"):
        list(st.add_labels(plan.tiles[0], np.zeros_like(ones, np.uint8), ones))
