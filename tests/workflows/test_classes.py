"""``lcmap classes``: names, merges and colours for a map's classes, and a model that maps them."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lcmap import api
from lcmap.errors import InvalidModelError, InvalidOptionError, OutputExistsError
from lcmap.models import read_header
from lcmap.workflows.classes import name_classes, names_from_labels, plan_classes
from lcmap.workflows.specs import MethodSpec
from tests.cli._cli import one_line_error, run


@pytest.fixture
def mapped(make_scene, tmp_path):
    """A 5-class map with a nodata box, and the model that made it."""
    scene = make_scene(nodata=0, nodata_box=True)
    model = tmp_path / "m.lcmap"
    api.segment(
        scene, tmp_path / "map.tif", save_model=model, method=MethodSpec("kmeans", classes=5)
    )
    return scene, tmp_path / "map.tif", model


def test_the_plan_renumbers_in_order_and_merges_same_names():
    names = [f"class {i}" for i in range(5)]
    colours = [(i, i, i) for i in range(5)]
    plan = plan_classes(names, colours, {0: "water", 1: "built", 2: "built", 4: "water"})
    assert plan.relabel == [0, 1, 1, 2, 0]
    assert plan.names == ["water", "built", "class 3"]
    assert plan.colours[2] == (3, 3, 3)  # untouched: its own colour
    assert plan.colours[0] == (31, 120, 220)  # a familiar colour for a common name
    with pytest.raises(InvalidOptionError, match="Class 7 is not in the map"):
        plan_classes(names, colours, {7: "x"})
    with pytest.raises(InvalidOptionError, match="no class of the result"):
        plan_classes(names, colours, {0: "water"}, {"lake": (0, 0, 255)})


def test_a_map_renamed_and_merged_keeps_its_grid_nodata_and_pixels(mapped, tmp_path):
    _, source, _ = mapped
    out = tmp_path / "named.tif"
    result = name_classes(
        [source], out, {0: "water", 1: "built-up", 2: "built-up"}, colours={"water": (31, 119, 180)}
    )
    assert result.plan.names == ["water", "built-up", "class 3", "class 4"]
    with rasterio.open(source) as a, rasterio.open(out) as b:
        old, new = a.read(1), b.read(1)
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
        assert b.nodata == 255 and np.array_equal(old == 255, new == 255)
        lut = np.array([0, 1, 1, 2, 3, 255, 255])
        assert np.array_equal(np.where(old == 255, 255, lut[np.minimum(old, 5)]), new)
        assert json.loads(b.tags()["CLASS_NAMES"]) == result.plan.names
        assert b.colormap(1)[0][:3] == (31, 119, 180)
    aux = (tmp_path / "named.tif.aux.xml").read_text()
    assert "<Category>built-up</Category>" in aux and "<Category>water</Category>" in aux
    style = (tmp_path / "named.qml").read_text()
    assert 'label="built-up"' in style and 'label="water"' in style


def test_the_rewritten_model_maps_the_named_classes_on_another_scene(mapped, make_scene, tmp_path):
    _, source, model = mapped
    named = tmp_path / "named.lcmap"
    name_classes(
        [source], tmp_path / "n.tif", {0: "water", 3: "water"}, model=model, save_model=named
    )
    header = read_header(named)
    assert header.class_names == ["water", "class 1", "class 2", "class 4"]
    other = make_scene("other.tif", seed=7)
    api.segment(other, tmp_path / "plain.tif", model=model)
    api.segment(other, tmp_path / "direct.tif", model=named)
    name_classes([tmp_path / "plain.tif"], tmp_path / "after.tif", {0: "water", 3: "water"})
    with rasterio.open(tmp_path / "direct.tif") as a, rasterio.open(tmp_path / "after.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))
        assert json.loads(a.tags()["CLASS_NAMES"]) == header.class_names
    # Named again from the named model: the two lookups compose.
    again = tmp_path / "again.lcmap"
    name_classes(
        [tmp_path / "direct.tif"],
        tmp_path / "d2.tif",
        {1: "land", 2: "land"},
        model=named,
        save_model=again,
    )
    assert read_header(again).extra["classes"]["relabel"] == [0, 1, 1, 0, 2]


def test_outputs_are_checked_before_any_work(mapped, tmp_path):
    _, source, model = mapped
    (tmp_path / "exists.tif").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        name_classes([source], tmp_path / "exists.tif", {0: "water"})
    assert (tmp_path / "exists.tif").read_bytes() == b"mine"
    api.segment(
        source.parent / "map.tif", tmp_path / "k3.tif", method=MethodSpec("kmeans", classes=3)
    )
    with pytest.raises(InvalidModelError, match="maps 5 classes but the map has 3"):
        name_classes(
            [tmp_path / "k3.tif"],
            tmp_path / "x.tif",
            {0: "a"},
            model=model,
            save_model=tmp_path / "x.lcmap",
        )
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "x.lcmap").exists()


def test_the_command_line(mapped, tmp_path):
    _, source, model = mapped
    out = tmp_path / "cli.tif"
    r = run(
        "classes",
        source,
        "-o",
        out,
        "--name",
        "0=water",
        "--merge",
        "1,2=built-up",
        "--colour",
        "water=#1f78b4",
        "--model",
        model,
        "--save-model",
        tmp_path / "c.lcmap",
        "-q",
    )
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "c.lcmap").exists()
    assert "9" in one_line_error(run("classes", source, "-o", tmp_path / "e.tif", "--name", "9=x"))
    one_line_error(run("classes", source, "-o", tmp_path / "e.tif", "--colour", "x=#12"))
    usage = run("classes", source, "-o", tmp_path / "e.tif", "--name", "a=x")
    assert usage.exit_code == 2 and "is not class ids" in usage.output
    usage = run("classes", source, "-o", tmp_path / "e.tif", "--name", "0=a", "--merge", "0,1=b")
    assert usage.exit_code == 2 and "two names" in usage.output
    assert not (tmp_path / "e.tif").exists()


def test_several_maps_into_a_folder(mapped, make_scene, tmp_path):
    _, source, model = mapped
    api.segment(make_scene("b.tif", seed=3), tmp_path / "b_map.tif", model=model)
    outdir = tmp_path / "named"
    r = run(
        "classes", source, tmp_path / "b_map.tif", "-o", f"{outdir}/", "--name", "0=water", "-q"
    )
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in outdir.glob("*.tif")) == ["b_map.tif", "map.tif"]
    # The named maps as one, as 'lcmap segment' writes its folder: the mosaic over them with
    # the new names, and its QGIS style.
    import xml.etree.ElementTree as ET

    with rasterio.open(outdir / "mosaic.vrt") as mosaic:
        assert mosaic.tags()["CLASS_NAMES"].startswith('["water"')
    style = ET.parse(outdir / "mosaic.qml").getroot().findall(".//paletteEntry")
    assert style[0].get("label") == "water"
    again = run(
        "classes", source, tmp_path / "b_map.tif", "-o", f"{outdir}/", "--name", "0=lake", "-q"
    )
    assert again.exit_code == 1 and "exists" in again.output  # nothing replaced unasked
    with rasterio.open(outdir / "mosaic.vrt") as mosaic:
        assert mosaic.tags()["CLASS_NAMES"].startswith('["water"')


L7 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "landsat7_tutorial"


@pytest.mark.skipif(not (L7 / "training_data.shp").exists(), reason="../shared data absent")
def test_sparse_labels_name_a_cluster_map_of_a_real_scene(tmp_path):
    """The Landsat 7 tutorial's 30 hand-drawn polygons (5 classes, names in a column) name an
    8-cluster map; the label raster drawn from them names it the same way by id."""
    cluster_map = tmp_path / "l7.tif"
    api.segment(
        L7 / "LE70220491999322EDC01_stack.gtif",
        cluster_map,
        method=MethodSpec("kmeans", classes=8, bands=[1, 2, 3, 4, 5, 6]),
    )
    learnt = names_from_labels([cluster_map], L7 / "training_data.shp", column="class")
    assert set(learnt.names.values()) <= {"forest", "water", "herbaceous", "barren", "urban"}
    # The four covers drawn over many pixels each name clusters. The water polygons cover a
    # few pixels only: too few for an 8-cluster k-means to be expected to keep apart, so
    # whether one is named "water" is left open.
    assert set(learnt.names.values()) >= {"forest", "herbaceous", "barren", "urban"}
    assert len(learnt.names) >= 5
    assert all(0.5 <= s <= 1.0 for s in learnt.shares.values())
    by_id = names_from_labels([cluster_map], L7 / "training_data.gtif")
    ids = {
        "forest": "label 1",
        "water": "label 2",
        "herbaceous": "label 3",
        "barren": "label 4",
        "urban": "label 5",
    }
    agree = [by_id.names.get(c) == ids[n] for c, n in learnt.names.items()]
    assert sum(agree) >= len(agree) - 1  # polygons and their raster differ only at edges
    strict = names_from_labels([cluster_map], L7 / "training_data.shp", "class", min_share=0.99)
    assert set(strict.names) | set(strict.weak) | set(strict.unlabelled) >= set(learnt.names)
    assert strict.weak  # some clusters hold more than one class
    result = name_classes([cluster_map], tmp_path / "named.tif", learnt.names)
    assert set(result.plan.names) <= set(learnt.names.values()) | {f"class {i}" for i in range(8)}
    r = run(
        "classes",
        cluster_map,
        "-o",
        tmp_path / "cli.tif",
        "--from-labels",
        L7 / "training_data.shp",
        "--class-column",
        "class",
    )
    assert r.exit_code == 0, r.output
    assert "of its labelled pixels" in r.output
