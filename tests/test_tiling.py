import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcmap.tiling import padded_length, plan_tiles, window_offsets, window_weights


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
    assert plan.read_size % multiple == 0 and plan.tile % multiple == 0
    assert len(plan.tiles) == plan.rows * plan.cols


def test_plan_tiles_shrinks_to_small_scene():
    plan = plan_tiles(100, 40, 512, 4)
    assert plan.tile == 100 and len(plan.tiles) == 1 and plan.read_size == 108


@pytest.mark.parametrize("bad", [(0, 10, 5, 0), (10, 10, 0, 0), (10, 10, 5, -1)])
def test_plan_tiles_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        plan_tiles(*bad)


def test_window_weights_are_positive_smooth_and_peak_in_the_middle():
    w = window_weights(64)
    assert w.shape == (64, 64) and (w > 0).all()
    assert w[31, 31] == pytest.approx(1.0, abs=2e-3)
    assert w[0, 0] < 0.01
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])


def test_half_window_strides_sum_to_a_constant():
    full = window_weights(64)
    w = full[31] / np.sqrt(full[31, 31])  # the 1-D ramp (the weights are its outer product)
    total = np.zeros(64 * 4)
    for start in window_offsets(len(total), 64, 32):
        total[start : start + 64] += w
    np.testing.assert_allclose(total[32:-32], 1.0, atol=2e-3)


@settings(max_examples=60, deadline=None)
@given(
    size_strides=st.sampled_from([(32, 16), (32, 8), (28, 14), (24, 24)]),
    tile_steps=st.integers(1, 6),
    length=st.integers(1, 400),
)
def test_windows_over_any_tile_are_the_scene_grid_windows_that_cover_its_core(
    size_strides, tile_steps, length
):
    """With tile and halo multiples of the stride and halo = size - stride, a tile's windows
    are exactly the scene-anchored windows that touch its core: the map cannot depend on the
    tile size."""
    size, stride = size_strides
    halo = size - stride
    plan = plan_tiles(length, 1, tile_steps * stride, halo, stride)
    for t in plan.tiles:
        c0, n = int(t.core.col_off), int(t.core.width)
        starts = {int(t.read.col_off) + o for o in window_offsets(plan.read_size, size, stride)}
        assert all((s + halo) % stride == 0 for s in starts)  # one grid, anchored to the scene
        needed = {s for s in range(c0 - size + 1, c0 + n) if (s + halo) % stride == 0}
        assert needed <= starts


def test_padded_length_fits_whole_windows():
    assert padded_length(10, 32, 16) == 32
    assert padded_length(33, 32, 16) == 48
    assert padded_length(48, 32, 16) == 48


def test_the_plan_of_a_huge_scene_costs_no_more_memory_than_a_small_one():
    import tracemalloc

    tracemalloc.start()
    small = plan_tiles(1000, 1000, 512, 64)
    small_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    huge = plan_tiles(1_000_000, 1_000_000, 512, 64)
    huge_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(huge.tiles) == 1954**2 and len(small.tiles) == 4
    assert huge_peak <= small_peak + 10_000
    last = huge.tiles[-1]
    assert last.index == (1953, 1953) and last.core.width == 1_000_000 - 1953 * 512
    assert list(small.tiles)[3] == small.tiles[3] == small.tiles[-1]
