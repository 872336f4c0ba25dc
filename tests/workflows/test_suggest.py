"""``lcmap.workflows.suggest``: active sampling from a model's clusters (Ghosh et al.) or from
clusters of the patches' embeddings, one per patch (TypiClust)."""

import geopandas as gpd
import pytest
import rasterio
from _cas_data import train_tiny_cas, write_three_class_scene
from shapely.geometry import box

from lcmap.errors import LcmapError, OutputExistsError
from lcmap.workflows.finetune import finetune
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
