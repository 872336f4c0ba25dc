"""Bad input: one clear line, a non-zero exit, no traceback, nothing written or overwritten."""

import os

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from lcmap.cli import app

runner = CliRunner()


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result


def _lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


def test_missing_scene(tmp_path):
    r = _run("segment", tmp_path / "nope.tif", "-o", tmp_path / "m.tif", "-q")
    assert r.exit_code == 1 and "not found" in r.output and len(_lines(r)) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_missing_map_or_scene_is_named_by_every_command_that_reads_one(make_scene, tmp_path):
    scene, nope = make_scene(), tmp_path / "nope.tif"
    for args, said in [
        (("view", nope, "--png", tmp_path / "p.png"), "Map "),
        (("view", scene, nope, "--png", tmp_path / "p.png"), "Scene "),
        (("classes", nope, "-o", tmp_path / "c.tif", "--from-labels", scene), "Map "),
    ]:
        r = _run(*args, "-q")
        assert r.exit_code == 1 and len(_lines(r)) == 1, r.output
        assert said in r.output and "nope.tif not found" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_a_map_or_scene_gdal_cannot_read_is_one_line_everywhere(make_scene, tmp_path):
    scene, bad = make_scene("map.tif", bands=1), tmp_path / "bad.tif"  # one band: a map
    bad.write_text("hello")
    for args in [
        ("view", bad, "--png", tmp_path / "p.png"),
        ("view", scene, bad, "--png", tmp_path / "p.png"),
        ("view", scene, bad, "--no-browser", "--port", "0"),
        ("classes", bad, "-o", tmp_path / "c.tif", "--name", "0=water"),
        ("vectorize", bad, "-o", tmp_path / "v.gpkg"),
    ]:
        r = _run(*args, "-q")
        assert r.exit_code == 1 and len(_lines(r)) == 1, r.output
        assert "bad.tif is not a raster GDAL can read" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tif", "map.tif"]


def test_not_a_raster(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("hello")
    r = _run("segment", bad, "-o", tmp_path / "m.tif", "-q")
    assert "is not a raster GDAL can read" in r.output and len(_lines(r)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tif"]


def test_truncated_raster(make_scene, tmp_path):
    scene = make_scene(compress="deflate")
    data = scene.read_bytes()
    scene.write_bytes(data[: len(data) // 3])
    r = _run("segment", scene, "-o", tmp_path / "m.tif", "-q")
    assert r.exit_code == 1 and "Error" in r.output
    assert not (tmp_path / "m.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_all_nodata_scene(make_scene, tmp_path):
    scene = make_scene(nodata=7)
    with rasterio.open(scene, "r+") as dst:
        dst.write(np.full((dst.count, dst.height, dst.width), 7, dtype=np.uint8))
    r = _run("segment", scene, "-o", tmp_path / "m.tif", "-q")
    assert "no valid pixels" in r.output and len(_lines(r)) == 1
    assert not (tmp_path / "m.tif").exists()


def test_band_out_of_range(make_scene, tmp_path):
    r = _run("segment", make_scene(), "-o", tmp_path / "m.tif", "-b", "1,5", "-q")
    assert "has 4 bands but band 5 was asked for" in r.output


def test_bad_band_list_is_a_usage_error(make_scene, tmp_path):
    r = _run("segment", make_scene(), "-o", tmp_path / "m.tif", "-b", "red", "-q")
    assert r.exit_code == 2 and "comma-separated" in r.output


def test_model_bands_differ_from_scene(make_scene, tmp_path):
    model = tmp_path / "m.lcmap"
    ok = runner.invoke(
        app,
        [
            "segment",
            str(make_scene()),
            "-o",
            str(tmp_path / "a.tif"),
            "--save-model",
            str(model),
            "-k",
            "3",
            "-q",
        ],
    )
    assert ok.exit_code == 0, ok.output
    three = make_scene("three.tif", bands=3)
    r = _run("segment", three, "-o", tmp_path / "b.tif", "--model", model, "-q")
    assert "has 3 bands but the 'kmeans' model reads bands 1,2,3,4" in r.output
    assert not (tmp_path / "b.tif").exists()


def test_training_options_given_with_a_model_are_refused(make_scene, tmp_path):
    model = tmp_path / "m.lcmap"
    scene = make_scene()
    ok = runner.invoke(
        app, ["train", str(scene), "-m", "kmeans", "-o", str(model), "-k", "3", "-q"]
    )
    assert ok.exit_code == 0, ok.output
    r = _run("segment", scene, "-o", tmp_path / "b.tif", "--model", model, "-p", "smooth=2", "-q")
    assert r.exit_code == 1 and len(_lines(r)) == 1
    assert "smooth is fixed when a kmeans model is trained" in r.output
    r = _run("segment", scene, "-o", tmp_path / "b.tif", "--model", model, "-k", "5", "-q")
    assert r.exit_code == 1 and len(_lines(r)) == 1
    assert "maps 3 classes, not 5" in r.output
    assert not (tmp_path / "b.tif").exists()
    ok = runner.invoke(
        app,
        [
            "segment",
            str(scene),
            "-o",
            str(tmp_path / "b.tif"),
            "--model",
            str(model),
            "-k",
            "3",
            "-q",
        ],
    )
    assert ok.exit_code == 0, ok.output


def test_unknown_method_suggests_a_name(make_scene, tmp_path):
    r = _run("segment", make_scene(), "-o", tmp_path / "m.tif", "--method", "kmean", "-q")
    assert "Unknown method 'kmean'. Did you mean 'kmeans'?" in r.output


def test_existing_output_is_kept_without_overwrite(make_scene, tmp_path):
    out = tmp_path / "m.tif"
    out.write_bytes(b"precious")
    r = _run("segment", make_scene(), "-o", out, "-q")
    assert "exists; pass --overwrite" in r.output
    assert out.read_bytes() == b"precious"


def test_overwrite_replaces(make_scene, tmp_path):
    out = tmp_path / "m.tif"
    out.write_bytes(b"old")
    r = runner.invoke(
        app, ["segment", str(make_scene()), "-o", str(out), "-k", "3", "--overwrite", "-q"]
    )
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as src:
        assert src.count == 1


def test_output_folder_missing(make_scene, tmp_path):
    r = _run("segment", make_scene(), "-o", tmp_path / "no" / "m.tif", "-q")
    assert "does not exist" in r.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_folder_not_writable(make_scene, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = _run("segment", make_scene(), "-o", ro / "m.tif", "-q")
    assert "not writable" in r.output


def test_output_folder_is_a_file(make_scene, tmp_path):
    (tmp_path / "file").write_text("x")
    r = _run("segment", make_scene(), "-o", tmp_path / "file" / "m.tif", "-q")
    assert "does not exist" in r.output


@pytest.mark.parametrize(
    "content", [b"", b"garbage" * 10, b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}xxxxxxx']
)
def test_corrupt_model(make_scene, tmp_path, content):
    model = tmp_path / "bad.lcmap"
    model.write_bytes(content)
    r = _run("segment", make_scene(), "-o", tmp_path / "m.tif", "--model", model, "-q")
    assert "not a valid lcmap model" in r.output or "not an lcmap model" in r.output
    assert not (tmp_path / "m.tif").exists()


def test_verbose_shows_traceback(tmp_path):
    r = runner.invoke(
        app, ["segment", str(tmp_path / "x.tif"), "-o", str(tmp_path / "m.tif"), "-vv"]
    )
    assert r.exit_code == 1 and "Traceback" in r.output
