"""``lcmap train-single-scene`` on the command line."""

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.models import read_header

runner = CliRunner()
FAST = [
    "-p",
    "epochs=1",
    "-p",
    "iterations=2",
    "-p",
    "crop_size=24",
    "--batch-size",
    "2",
    "-p",
    "features=8",
    "--device",
    "cpu",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_trains_saves_the_model_and_maps_the_scene(make_scene, tmp_path):
    scene = make_scene(width=61, height=47, bands=3)
    model, out = tmp_path / "single.lcmap", tmp_path / "map.tif"
    r = _invoke(
        "train-single-scene", scene, "-o", model, "-k", 4, "--segment", out, "--seed", 1, *FAST
    )
    assert r.exit_code == 0, r.output
    assert "Saved single_scene model (4 clusters" in r.output and "Wrote" in r.output
    header = read_header(model)
    assert header.method == "single_scene" and header.num_classes == 4
    assert header.in_channels == 3 and header.config["iterations"] == 2
    assert header.config["crop_size"] == 24 and header.config["features"] == 8
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (src.width, src.height)
        assert dst.crs == src.crs and dst.transform == src.transform
        labels = dst.read(1)
    assert labels.max() < 4


def test_same_seed_same_map(make_scene, tmp_path):
    scene = make_scene(width=40, height=33, bands=3)
    maps = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.tif"
        r = _invoke(
            "train-single-scene",
            scene,
            "-o",
            tmp_path / f"{name}.lcmap",
            "--segment",
            out,
            "-q",
            *FAST,
        )
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    np.testing.assert_array_equal(maps[0], maps[1])


def test_bands_pick_the_inputs(make_scene, tmp_path):
    scene = make_scene(width=40, height=33, bands=4)
    model = tmp_path / "m.lcmap"
    r = _invoke("train-single-scene", scene, "-o", model, "-b", "3,2", "-q", *FAST)
    assert r.exit_code == 0, r.output
    header = read_header(model)
    assert header.bands == [3, 2] and header.in_channels == 2


def test_existing_map_fails_before_training(make_scene, tmp_path):
    scene = make_scene(width=40, height=33, bands=3)
    out = tmp_path / "map.tif"
    out.write_bytes(b"")
    model = tmp_path / "m.lcmap"
    r = _invoke("train-single-scene", scene, "-o", model, "--segment", out, *FAST)
    assert r.exit_code == 1
    assert "exists; pass --overwrite" in r.output and not model.exists()


def test_bad_option_is_one_clear_line(make_scene, tmp_path):
    scene = make_scene(width=40, height=33, bands=3)
    r = _invoke("train-single-scene", scene, "-o", tmp_path / "m.lcmap", "-p", "lr=-1", *FAST)
    assert r.exit_code == 1
    assert "lr=-1.0 must be above 0" in r.output and "Traceback" not in r.output


def test_help_shows_examples():
    r = _invoke("train-single-scene", "--help")
    assert r.exit_code == 0
    assert "--segment" in r.output and "lcmap train-single-scene" in r.output


def test_model_maps_another_scene_with_the_same_meaning(make_scene, tmp_path):
    # The paper's transfer claim: a model trained on one scene labels a similar, disjoint scene
    # consistently. Second scene: other noise, other size, covers elsewhere (flipped).
    from _helpers import quadrant_truth

    first = make_scene("a.tif", width=96, height=80, bands=3, seed=1)
    second = make_scene("b.tif", width=72, height=90, bands=3, seed=2)
    with rasterio.open(second, "r+") as dst:
        dst.write(dst.read()[:, ::-1, ::-1])
    model, a_map, b_map = tmp_path / "m.lcmap", tmp_path / "a_map.tif", tmp_path / "b_map.tif"
    r = _invoke(
        "train-single-scene",
        first,
        "-o",
        model,
        "-k",
        4,
        "--segment",
        a_map,
        "-q",
        "--seed",
        0,
        *FAST,
    )
    assert r.exit_code == 0, r.output
    r = _invoke("segment", second, "-o", b_map, "--model", model, "-q")
    assert r.exit_code == 0, r.output
    with rasterio.open(a_map) as a_src, rasterio.open(b_map) as b_src:
        a, b = a_src.read(1), b_src.read(1)
    ta, tb = quadrant_truth(*a.shape), quadrant_truth(*b.shape)[::-1, ::-1]
    # Each cover gets the same mix of labels in both scenes (the model is barely trained, so a
    # cover may mix clusters, but the same way in both): total variation distance below 0.1.
    for t in range(4):
        share_a = np.bincount(a[ta == t], minlength=4) / (ta == t).sum()
        share_b = np.bincount(b[tb == t], minlength=4) / (tb == t).sum()
        assert 0.5 * np.abs(share_a - share_b).sum() < 0.1, (t, share_a, share_b)
