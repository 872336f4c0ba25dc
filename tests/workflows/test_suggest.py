"""``lcmap.workflows.suggest``: active sampling from a model's clusters (Ghosh et al.) or from
clusters of the patches' embeddings, one per patch (TypiClust)."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from _cas_data import train_tiny_cas, write_three_class_scene
from shapely.geometry import box

from lcmap.errors import LcmapError, OutputExistsError
from lcmap.workflows.finetune import finetune
from lcmap.workflows.patch_choice import Patch, allocate, entropy, recluster, spread
from lcmap.workflows.specs import PatchSpec, RunSpec
from lcmap.workflows.suggest import suggest_labels

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", seed=0)
    write_three_class_scene(root / "b.tif", root / "b_labels.tif", 96, 112, seed=1)
    train_tiny_cas(root / "a.tif", root / "cas.lcmap")
    return root


def test_allocate_spreads_evenly_and_passes_overflow_on():
    assert allocate(7, [10, 10, 10], [2, 0, 1]) == [2, 2, 3]
    assert allocate(6, [1, 10, 10], [0, 1, 2]) == [1, 3, 2]
    assert allocate(5, [0, 10, 10], [0, 1, 2]) == [0, 3, 2]
    assert allocate(50, [2, 3, 0], [0, 1, 2]) == [2, 3, 0]


def test_entropy():
    assert entropy(np.array([5, 0, 0])) == 0.0
    assert entropy(np.array([1, 1])) == pytest.approx(np.log(2))
    assert entropy(np.array([0, 0])) == 0.0


def test_suggest_labels_returns_budget_polygons_inside_the_scenes(data, tmp_path):
    root = data
    out = tmp_path / "to_label.gpkg"
    frame = suggest_labels(
        [root / "a.tif", root / "b.tif"],
        root / "cas.lcmap",
        out,
        clusters="model",
        patches=PatchSpec(count=6, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 6 and frame.geometry.is_valid.all()
    assert frame["cluster"].max() < 3  # the tiny CAS model's 3 clusters
    assert sorted(frame["order"]) == list(range(1, 7))
    sizes = frame.groupby("cluster").size()
    assert sizes.max() - sizes.min() <= 1 or len(sizes) < 3  # spread over the clusters
    with rasterio.open(root / "a.tif") as a, rasterio.open(root / "b.tif") as b:
        bounds = {"a": box(*a.bounds), "b": box(*b.bounds)}
        crs = a.crs
    for _, row in frame.iterrows():
        assert bounds[row["scene"]].contains(row.geometry)
        assert row.geometry.area == pytest.approx((32 * 2.0) ** 2)
    written = gpd.read_file(out)
    assert len(written) == 6 and written.crs == crs
    assert set(written.columns) >= {"scene", "cluster", "rank", "order", "geometry"}
    # Each cluster's first patch (rank 1) comes before any second one.
    assert (frame.sort_values("order").head(sizes.size)["rank"] == 1).all()
    with pytest.raises(OutputExistsError):
        suggest_labels(
            [root / "a.tif"], root / "cas.lcmap", out, patches=PatchSpec(count=2, size=32)
        )


def test_extra_patches_follow_the_tuned_models_uncertainty(data, tmp_path):
    root = data
    finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        [root / "a_labels.tif"],
        tmp_path / "t.lcmap",
        patches=PatchSpec(count=2, size=32),
        options={"steps": 2},
        run=RunSpec(device="cpu"),
    )
    frame = suggest_labels(
        [root / "a.tif"],
        root / "cas.lcmap",
        None,
        tuned=tmp_path / "t.lcmap",
        patches=PatchSpec(count=4, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 4
    # And the suggestions are valid training patches.
    gpkg = tmp_path / "s.gpkg"
    frame.to_file(gpkg)
    header = finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        [root / "a_labels.tif"],
        tmp_path / "t2.lcmap",
        patches=PatchSpec(count=3, file=gpkg, size=32),
        options={"steps": 2},
        run=RunSpec(device="cpu"),
    )
    assert header.extra["patches"] == 3


def test_budget_clusters_make_each_patch_the_most_typical_of_its_own_cluster(data):
    root = data
    frame = suggest_labels(
        [root / "a.tif", root / "b.tif"],
        root / "cas.lcmap",
        None,
        clusters="budget",
        patches=PatchSpec(count=7, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 7 and frame["cluster"].nunique() == 7
    assert (frame["rank"] == 1).all() and sorted(frame["order"]) == list(range(1, 8))
    fewer = suggest_labels(
        [root / "a.tif"],
        root / "cas.lcmap",
        None,
        clusters=2,
        patches=PatchSpec(count=6, size=32),
        run=RunSpec(device="cpu"),
    )
    assert sorted(fewer.groupby("cluster").size()) == [3, 3]


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


def test_the_default_diverse_pick_keeps_the_split_over_the_models_clusters(data):
    root = data
    kwargs = {"patches": PatchSpec(count=9, size=16), "run": RunSpec(device="cpu")}
    nearest = suggest_labels(
        [root / "a.tif", root / "b.tif"], root / "cas.lcmap", None, pick="nearest", **kwargs
    )
    diverse = suggest_labels([root / "a.tif", root / "b.tif"], root / "cas.lcmap", None, **kwargs)
    share = nearest.groupby("cluster").size()
    assert diverse.groupby("cluster").size().equals(share)  # the same split over clusters
    assert sorted(diverse["order"]) == list(range(1, 10))
    assert not diverse.duplicated(["scene", "row", "col"]).any()
    keys = {(r.scene, r.row, r.col) for r in nearest.itertuples()}
    assert {(r.scene, r.row, r.col) for r in diverse.itertuples()} != keys  # other patches
    with pytest.raises(LcmapError, match="pick 'far' is invalid"):
        suggest_labels(
            [root / "a.tif"], root / "cas.lcmap", None, pick="far", patches=PatchSpec(count=4)
        )


@pytest.mark.parametrize("clusters", [0, -2, "all"])
def test_a_bad_cluster_count_is_a_clear_error(data, clusters):
    with pytest.raises(LcmapError, match="clusters"):
        suggest_labels(
            [data / "a.tif"],
            data / "cas.lcmap",
            None,
            clusters=clusters,
            patches=PatchSpec(count=4),
        )
