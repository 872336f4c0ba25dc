"""``lcmap suggest-labels``: the command writes the footprints a user annotates next."""

import geopandas as gpd
import pytest
from _cas_data import train_tiny_cas, write_three_class_scene

from lcmap.cli import app
from tests.cli._cli import one_line_error, runner

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("suggest_cli")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", seed=0)
    train_tiny_cas(root / "a.tif", root / "cas.lcmap")
    return root


def test_the_command_writes_the_budget_as_polygons(data, tmp_path):
    out = tmp_path / "to_label.gpkg"
    args = [
        "suggest-labels",
        str(data / "a.tif"),
        "--model",
        str(data / "cas.lcmap"),
        "-n",
        "4",
        "--patch-size",
        "32",
        "-o",
        str(out),
        "--device",
        "cpu",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Wrote 4 patch footprints" in r.output
    frame = gpd.read_file(out)
    assert len(frame) == 4 and sorted(frame["order"]) == [1, 2, 3, 4]
    r = runner.invoke(app, args)  # the output exists now: refused, kept
    assert "--overwrite" in one_line_error(r) and len(gpd.read_file(out)) == 4


def test_a_model_without_an_encoder_is_one_line(data, make_scene, tmp_path):
    model = tmp_path / "km.lcmap"
    r = runner.invoke(
        app, ["train", str(data / "a.tif"), "-m", "kmeans", "-k", "3", "-o", str(model), "-q"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "suggest-labels",
            str(data / "a.tif"),
            "--model",
            str(model),
            "-n",
            "2",
            "-o",
            str(tmp_path / "s.gpkg"),
        ],
    )
    assert "provides no encoder" in one_line_error(r)
    assert not (tmp_path / "s.gpkg").exists()


def test_the_clusters_option(data, tmp_path):
    base = [
        "suggest-labels",
        str(data / "a.tif"),
        "--model",
        str(data / "cas.lcmap"),
        "-n",
        "4",
        "--patch-size",
        "32",
        "--device",
        "cpu",
    ]
    for clusters, most in (("model", 3), ("2", 2), ("budget", 4)):
        out = tmp_path / f"{clusters}.gpkg"
        r = runner.invoke(app, [*base, "--clusters", clusters, "-o", str(out)])
        assert r.exit_code == 0, r.output
        found = gpd.read_file(out)["cluster"]
        assert len(found) == 4 and found.max() < most  # cluster ids 0..most-1
    assert found.nunique() == 4  # budget: one patch per cluster
    r = runner.invoke(app, [*base, "--clusters", "many", "-o", str(tmp_path / "bad.gpkg")])
    assert r.exit_code == 2 and "use budget, model or a number" in r.output  # a usage error
    r = runner.invoke(app, [*base, "--clusters", "0", "-o", str(tmp_path / "bad.gpkg")])
    assert "clusters 0 is invalid" in one_line_error(r)
    assert not (tmp_path / "bad.gpkg").exists()


def test_the_pick_option(data, tmp_path):
    base = [
        "suggest-labels",
        str(data / "a.tif"),
        "--model",
        str(data / "cas.lcmap"),
        "-n",
        "6",
        "--patch-size",
        "16",
        "--device",
        "cpu",
    ]
    found = {}
    for pick in ("nearest", "diverse"):
        out = tmp_path / f"{pick}.gpkg"
        r = runner.invoke(app, [*base, "--pick", pick, "-o", str(out)])
        assert r.exit_code == 0, r.output
        frame = gpd.read_file(out)
        found[pick] = {(row.row, row.col) for row in frame.itertuples()}
        assert len(found[pick]) == 6
    assert found["nearest"] != found["diverse"]
    r = runner.invoke(app, [*base, "--pick", "far", "-o", str(tmp_path / "bad.gpkg")])
    assert r.exit_code == 2 and "'far' is not one of" in r.output
    assert not (tmp_path / "bad.gpkg").exists()
