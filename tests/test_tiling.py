import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcmap.tiling import blend_weights, plan_tiles


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    tile=st.integers(1, 128),
    halo=st.integers(0, 20),
    multiple=st.sampled_from([1, 8, 14]),
)
def test_plan_tiles_covers_scene_once(width, height, tile, halo, multiple):
    plan = plan_tiles(width, height, tile, halo, multiple)
    hits = np.zeros((height, width), dtype=int)
    for t in plan.tiles:
        c = t.core
        hits[c.row_off : c.row_off + c.height, c.col_off : c.col_off + c.width] += 1
        # The read window holds the core plus at least `halo` pixels on each side.
        r0, c0 = t.core_offset
        assert r0 == c0 == halo
        assert t.read.width == t.read.height == plan.read_size
        assert t.read.col_off + plan.read_size >= c.col_off + c.width + halo
    assert (hits == 1).all()
    assert plan.read_size % multiple == 0
    assert len(plan.tiles) == plan.rows * plan.cols


def test_plan_tiles_shrinks_to_small_scene():
    plan = plan_tiles(100, 40, 512, 4)
    assert plan.tile == 100 and len(plan.tiles) == 1 and plan.read_size == 108


@pytest.mark.parametrize("bad", [(0, 10, 5, 0), (10, 10, 0, 0), (10, 10, 5, -1)])
def test_plan_tiles_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        plan_tiles(*bad)


def test_blend_weights_are_positive_smooth_and_peak_in_the_middle():
    w = blend_weights(64, 8)
    assert w.shape == (64, 64) and (w > 0).all()
    assert w[32, 32] == pytest.approx(1.0)
    assert w[0, 0] < 0.01
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
