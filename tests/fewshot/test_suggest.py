"""``lcmap.fewshot.suggest``: active sampling from CAS clusters."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from _cas_data import train_tiny_cas, write_three_class_scene
from shapely.geometry import box

from lcmap.errors import OutputExistsError
from lcmap.fewshot.finetune import finetune
from lcmap.fewshot.suggest import allocate, entropy, suggest_labels

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
        budget=6,
        patch_size=32,
        device="cpu",
    )
    assert len(frame) == 6 and frame.geometry.is_valid.all()
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
    # The closest patch of each cluster comes first.
    assert (frame.sort_values("order").head(sizes.size)["rank"] == 1).all()
    with pytest.raises(OutputExistsError):
        suggest_labels([root / "a.tif"], root / "cas.lcmap", out, budget=2, patch_size=32)


def test_extra_patches_follow_the_tuned_models_uncertainty(data, tmp_path):
    root = data
    finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        [root / "a_labels.tif"],
        tmp_path / "t.lcmap",
        patches=2,
        patch_size=32,
        steps=2,
        device="cpu",
    )
    frame = suggest_labels(
        [root / "a.tif"],
        root / "cas.lcmap",
        None,
        budget=4,
        patch_size=32,
        tuned=tmp_path / "t.lcmap",
        device="cpu",
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
        patches=3,
        patch_file=gpkg,
        patch_size=32,
        steps=2,
        device="cpu",
    )
    assert header.extra["patches"] == 3
