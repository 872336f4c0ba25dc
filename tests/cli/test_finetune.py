"""``lcmap finetune`` and ``lcmap suggest-labels`` on the command line."""

import geopandas as gpd
import pytest
from _cas_data import train_tiny_cas, write_three_class_scene
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.models import read_header

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_cas")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", 96, 96, seed=0)
    train_tiny_cas(root / "a.tif", root / "cas.lcmap")
    return root


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_suggest_then_finetune_from_the_suggestions(data, tmp_path):
    root = data
    gpkg = tmp_path / "to_label.gpkg"
    r = _invoke(
        "suggest-labels",
        root / "a.tif",
        "--model",
        root / "cas.lcmap",
        "--budget",
        4,
        "--patch-size",
        32,
        "-o",
        gpkg,
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    assert "Wrote 4 patch footprints" in r.output and len(gpd.read_file(gpkg)) == 4
    tuned = tmp_path / "tuned.lcmap"
    r = _invoke(
        "finetune",
        root / "cas.lcmap",
        "--scene",
        root / "a.tif",
        "--labels",
        root / "a_labels.tif",
        "-o",
        tuned,
        "--class-names",
        "water,land,vegetation",
        "--patches",
        3,
        "--patch-file",
        gpkg,
        "--patch-size",
        32,
        "-p",
        "steps=2",
        "--init",
        "autoencoder",
        "--device",
        "cpu",
        "-q",
    )
    assert r.exit_code == 0, r.output
    header = read_header(tuned)
    assert header.class_names == ["water", "land", "vegetation"]
    assert header.extra["patches"] == 3 and header.config["init"] == "autoencoder"
    assert header.config["steps"] == 2  # -p reaches the tuned network's options
    r = _invoke(
        "suggest-labels",
        root / "a.tif",
        "--model",
        root / "cas.lcmap",
        "--budget",
        4,
        "--patch-size",
        32,
        "-o",
        gpkg,
    )
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_finetune_usage_and_input_errors(data, tmp_path):
    root = data
    r = _invoke(
        "finetune",
        root / "cas.lcmap",
        "--scene",
        root / "a.tif",
        "--scene",
        root / "a.tif",
        "--labels",
        root / "a_labels.tif",
        "-o",
        tmp_path / "t.lcmap",
    )
    assert r.exit_code == 2 and "one --labels per --scene" in r.output
    r = _invoke(
        "finetune",
        root / "cas.lcmap",
        "--scene",
        root / "a.tif",
        "--labels",
        root / "a_labels.tif",
        "-o",
        tmp_path / "t.lcmap",
        "--init",
        "dec",
    )
    assert r.exit_code == 1 and "init 'dec' is not offered" in r.output
    assert "cas (" in r.output and "random (" in r.output
    r = _invoke(
        "finetune",
        tmp_path / "nope.lcmap",
        "--scene",
        root / "a.tif",
        "--labels",
        root / "a_labels.tif",
        "-o",
        tmp_path / "t.lcmap",
    )
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "t.lcmap").exists()


def test_finetune_checks_the_sensor_and_keeps_the_band_record(data, tmp_path):
    """A model fitted on 3-band uint8 imagery, tuned on an 8-band int16 stack: the same
    warning as applying it; and the tuned model keeps the base model's band record."""
    import numpy as np
    import rasterio

    root = data
    with rasterio.open(root / "a.tif") as src:
        profile = {**src.profile, "count": 8, "dtype": "int16", "nodata": -9999}
        rgb = src.read().astype(np.int16) * 40
    with rasterio.open(tmp_path / "landsat.tif", "w", **profile) as dst:
        dst.write(np.concatenate([rgb, rgb, rgb[:2]]))
    import subprocess
    import sys

    args = [
        "finetune",
        root / "cas.lcmap",
        "--scene",
        tmp_path / "landsat.tif",
        "--labels",
        root / "a_labels.tif",
        "-o",
        tmp_path / "t.lcmap",
        "-p",
        "steps=2",
    ]
    code = "from lcmap.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "looks unlike the scenes the model was trained on" in " ".join(done.stderr.split())
    tuned, base = read_header(tmp_path / "t.lcmap"), read_header(root / "cas.lcmap")
    assert tuned.band_facts == base.band_facts and tuned.band_facts


def test_finetune_takes_the_tuned_networks_options_through_p(data, tmp_path):
    root = data
    base = [
        "finetune",
        root / "cas.lcmap",
        "--scene",
        root / "a.tif",
        "--labels",
        root / "a_labels.tif",
        "--patch-size",
        32,
        "-p",
        "steps=2",
        "-q",
    ]
    r = _invoke(*base, "-o", tmp_path / "t.lcmap", "-p", "class_weighting=none")
    assert r.exit_code == 0, r.output
    assert read_header(tmp_path / "t.lcmap").config["class_weighting"] == "none"
    r = _invoke(*base, "-o", tmp_path / "u.lcmap", "-p", "no_such_option=1")
    assert r.exit_code == 1 and "no_such_option" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "u.lcmap").exists()
