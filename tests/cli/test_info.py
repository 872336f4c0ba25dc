"""``lcmap info`` and ``lcmap methods``."""

import json

import pytest

from lcmap.cli import app
from tests.cli._cli import one_line_error, runner


def test_methods_lists_each_option_with_type_default_and_help():
    r = runner.invoke(app, ["methods", "kmeans", "--options"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if " smooth " in x)
    assert "int" in line and " 1 " in line and "local mean" in line
    from lcmap.methods import method_options

    specs = {s.name: s for s in method_options("single_scene")}
    assert specs["iterations"].default == 50 and specs["iterations"].type == "int"
    assert "updates per batch" in specs["iterations"].help


def test_info_tells_a_scene_a_map_and_a_model_apart(make_scene, tmp_path):
    scene = make_scene()
    model, out = tmp_path / "km.lcmap", tmp_path / "map.tif"
    r = runner.invoke(app, ["train", str(scene), "-m", "kmeans", "-k", "3", "-o", str(model)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["segment", str(scene), "--model", str(model), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    kinds = {}
    for path in (scene, out, model):
        r = runner.invoke(app, ["info", str(path), "--json"])
        assert r.exit_code == 0, r.output
        kinds[path] = json.loads(r.stdout)
    assert kinds[scene]["kind"] == "scene" and kinds[out]["kind"] == "label map"
    # What the default method and the pictures go by: the pixel on the ground, and no bands
    # named as colours in this unnamed 4-band scene.
    assert kinds[scene]["pixel_size_m"] == pytest.approx(2.0, abs=0.01)  # make_scene's
    assert kinds[scene]["true_colour"] is None
    from tests.io.test_preview import sentinel2_stack

    r = runner.invoke(app, ["info", str(sentinel2_stack(tmp_path / "s2.tif")), "--json"])
    s2 = json.loads(r.stdout)
    assert s2["pixel_size_m"] == pytest.approx(10, abs=0.01)
    assert s2["true_colour"] == {"bands": [4, 3, 2], "from": "a Sentinel-2 L2A stack (12 bands)"}
    assert kinds[model]["kind"] == "model" and kinds[model]["num_classes"] == 3
    assert kinds[model]["method"] == "kmeans"


def test_info_on_a_missing_file_is_one_line(tmp_path):
    one_line_error(runner.invoke(app, ["info", str(tmp_path / "nope.tif")]))
