"""``lcmap.workflows.patch_choice``: the budget split over clusters (Ghosh et al.), the typical
and diverse share of each (TypiClust), clusters drawn afresh from the embeddings."""

import numpy as np
import pytest

from lcmap.workflows.patch_choice import Patch, allocate, entropy, recluster, spread


def test_allocate_spreads_evenly_and_passes_overflow_on():
    assert allocate(7, [10, 10, 10], [2, 0, 1]) == [2, 2, 3]
    assert allocate(6, [1, 10, 10], [0, 1, 2]) == [1, 3, 2]
    assert allocate(5, [0, 10, 10], [0, 1, 2]) == [0, 3, 2]
    assert allocate(50, [2, 3, 0], [0, 1, 2]) == [2, 3, 0]


def test_entropy():
    assert entropy(np.array([5, 0, 0])) == 0.0
    assert entropy(np.array([1, 1])) == pytest.approx(np.log(2))
    assert entropy(np.array([0, 0])) == 0.0


def test_reclustering_finds_the_groups_and_their_most_typical_member():
    directions = np.eye(8, dtype=np.float32)[:3] * 5
    offsets = [np.zeros(8, dtype=np.float32)]  # member 0 on the group's axis, the others
    for j in range(4):  # in pairs that cancel out, so the centroid is the axis
        step = np.zeros(8, dtype=np.float32)
        step[3 + j] = 0.5 + 0.2 * j
        offsets += [step, -step]
    patches = [Patch(0, None, -1, 0.0, 0.0, d + o) for d in directions for o in offsets]
    assert recluster(patches, 3, seed=0) == 3
    groups = [patches[g * 9 : g * 9 + 9] for g in range(3)]
    assert len({p.cluster for p in patches}) == 3
    for members in groups:
        assert len({p.cluster for p in members}) == 1  # a group is one cluster
        assert min(members, key=lambda p: p.distance) is members[0]
        assert members[0].distance == pytest.approx(0.0, abs=1e-6)
        assert all(0 < p.confidence <= 1 for p in members)


def _group(axis: int, size: int, first_distance: float) -> list[Patch]:
    """``size`` patches around one axis of R^8: the first on it, the others in pairs that
    cancel out (so the group's mean direction is the axis); ``distance`` (to a model centroid)
    grows from ``first_distance`` in steps of 0.01."""
    base = np.zeros(8, dtype=np.float32)
    base[axis] = 5
    vectors = [base]
    for j in range((size - 1) // 2):
        step = np.zeros(8, dtype=np.float32)
        step[3 + j % 5] = 0.3 + 0.1 * j
        vectors += [base + step, base - step]
    return [Patch(0, None, 0, first_distance + 0.01 * i, 0.5, v) for i, v in enumerate(vectors)]


def test_diverse_pick_takes_the_typical_patch_of_each_sub_mode():
    # One model cluster with three sub-modes: 7 near-copies nearest the model's centroid, then
    # 5 and 3 patches of two other modes. Seed 001's nearest patches all come from the first
    # mode; the diverse pick takes each mode's own central patch, the largest mode first.
    big, mid, small = _group(0, 7, 0.0), _group(1, 5, 0.2), _group(2, 3, 0.4)
    members = big + mid + small
    assert all(p in big for p in members[:3])  # what "nearest" would take
    chosen = spread(members, 3, seed=0)
    assert chosen == [big[0], mid[0], small[0]]
    assert spread(members, 3, seed=1) == chosen  # the same for another seed
    assert spread(members, len(members), seed=0) == members  # a share of all: all
    assert spread(members, 0, seed=0) == members  # (the caller takes none of them)
