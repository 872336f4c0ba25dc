"""Issue 12, data loss: an output never replaces an input, a special file or another output,
a failed run publishes no model, and crafted model files are refused on load."""

import json
import os
import struct

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.workflows.specs import MethodSpec

runner = CliRunner()


def _fails(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert len([x for x in result.output.splitlines() if x.strip()]) == 1, result.output
    return result.output


def _ok(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def scene(make_scene):
    return make_scene()


def test_map_over_its_own_scene_is_refused(scene, tmp_path):
    before = scene.read_bytes()
    out = _fails("segment", scene, "-o", scene, "-k", "4", "--overwrite", "-q")
    assert "is the input" in out and scene.read_bytes() == before


def test_model_over_a_training_scene_is_refused(scene, tmp_path):
    before = scene.read_bytes()
    out = _fails("train", scene, "-m", "kmeans", "-o", scene, "--overwrite", "-q")
    assert "is the input" in out and scene.read_bytes() == before


def test_saved_model_over_the_scene_is_refused(scene, tmp_path):
    before = scene.read_bytes()
    _fails("segment", scene, "-o", tmp_path / "m.tif", "--save-model", scene, "--overwrite", "-q")
    assert scene.read_bytes() == before and not (tmp_path / "m.tif").exists()


def test_the_same_file_as_two_outputs_is_refused(scene, tmp_path):
    out = _fails(
        "segment", scene, "-o", tmp_path / "m.tif", "--save-model", tmp_path / "m.tif", "-q"
    )
    assert "same file" in out and not (tmp_path / "m.tif").exists()


def test_map_over_the_model_it_applies_is_refused(scene, tmp_path):
    model = tmp_path / "k.lcmap"
    _ok("train", scene, "-m", "kmeans", "-o", model, "-q")
    before = model.read_bytes()
    _fails("segment", scene, "-o", model, "--model", model, "--overwrite", "-q")
    assert model.read_bytes() == before


def test_vectors_over_the_map_are_refused(scene, tmp_path):
    _ok("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q")
    before = (tmp_path / "m.tif").read_bytes()
    _fails("vectorize", tmp_path / "m.tif", "-o", tmp_path / "m.tif", "--overwrite", "-q")
    assert (tmp_path / "m.tif").read_bytes() == before


def test_a_fifo_is_never_replaced(scene, tmp_path):
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    out = _fails("segment", scene, "-o", fifo, "--overwrite", "-q")
    assert "not a regular file" in out
    assert not fifo.is_file() and fifo.exists()
    _fails("train", scene, "-m", "kmeans", "-o", fifo, "--overwrite", "-q")
    assert not fifo.is_file()


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_dev_null_is_never_replaced(scene):
    _fails("segment", scene, "-o", "/dev/null", "--overwrite", "-q")
    assert not os.path.isfile("/dev/null") and not os.path.exists("/dev/null.lcmap.json")


def test_a_failed_run_publishes_no_model(scene, tmp_path):
    _fails(
        "segment",
        scene,
        "-o",
        tmp_path / "m.tif",
        "--co",
        "BLOCKSIZE=7",
        "--save-model",
        tmp_path / "m.lcmap",
        "-q",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_a_successful_run_publishes_the_model_it_recorded(scene, tmp_path):
    _ok(
        "segment",
        scene,
        "-o",
        tmp_path / "m.tif",
        "-k",
        "3",
        "--save-model",
        tmp_path / "m.lcmap",
        "-q",
    )
    from lcmap.models import file_sha256

    side = json.loads((tmp_path / "m.lcmap.json").read_text())
    assert side["model_sha256"] == file_sha256(tmp_path / "m.lcmap")


# -- crafted model files -----------------------------------------------------------------


@pytest.fixture
def model(scene, tmp_path):
    path = tmp_path / "k.lcmap"
    _ok("train", scene, "-m", "kmeans", "-k", "3", "-o", path, "-q")
    return path


def _rewrite(path, header_edit=None, tensor_edit=None):
    """Rewrite a model file with its JSON header and/or tensors changed."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        meta = json.loads(fh.read(size))["__metadata__"]
    header = json.loads(meta["lcmap"])
    tensors = load_file(str(path))
    if header_edit:
        header = header_edit(header)
    if tensor_edit:
        tensor_edit(tensors)
    save_file(tensors, str(path), metadata={"lcmap": json.dumps(header)})


def _set(key, value):
    def edit(h):
        h[key] = value
        return h

    return edit


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda h: [h], "not an object"),
        (_set("bands", 1.5), "bands"),
        (_set("bands", [-1, 2, 3, 4]), "bands"),
        (_set("bands", "1,2"), "bands"),
        (_set("format_version", "1"), "format_version"),
        (_set("method", 3), "method"),
        (_set("norm_low", "low"), "norm_low"),
        (_set("norm_low", [0.0]), "norm_low"),
        (_set("norm_high", [float("nan")] * 4), "norm_high"),
        (lambda h: {**h, "norm_low": h["norm_high"], "norm_high": h["norm_low"]}, "norm_high"),
        (_set("class_names", ["a"]), "class_names"),
        (_set("colours", [[0, 0]] * 3), "colours"),
        (_set("colours", [[0, 0, 300]] * 3), "colours"),
        (_set("num_classes", True), "num_classes"),
    ],
)
def test_malformed_headers_are_refused_naming_the_field(scene, model, tmp_path, edit, field):
    _rewrite(model, header_edit=edit)
    for cmd in (
        ("segment", scene, "-o", tmp_path / "m.tif", "--model", model, "-q"),
        ("info", model, "-q"),
    ):
        assert field in _fails(*cmd)
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.parametrize(
    "edit,what",
    [
        (lambda t: t.__setitem__("centroids", t["centroids"] * float("nan")), "NaN"),
        (
            lambda t: t.__setitem__("centroids", t["centroids"].to(__import__("torch").int8)),
            "dtype",
        ),
    ],
)
def test_crafted_tensors_are_refused(scene, model, tmp_path, edit, what):
    _rewrite(model, tensor_edit=edit)
    assert what in _fails("segment", scene, "-o", tmp_path / "m.tif", "--model", model, "-q")


# -- a model applied to other bands ------------------------------------------------------


def test_bands_cannot_be_chosen_again_with_a_model(scene, model, tmp_path):
    out = _fails(
        "segment", scene, "-o", tmp_path / "m.tif", "--model", model, "-b", "3,2,1,4", "-q"
    )
    assert "bands cannot be chosen again" in out and not (tmp_path / "m.tif").exists()


def test_model_records_band_facts(make_scene, tmp_path):
    import rasterio

    from lcmap.models import read_header

    scene = make_scene()
    with rasterio.open(scene, "r+") as dst:
        dst.descriptions = ("red", "green", "blue", "nir")
    model = tmp_path / "k.lcmap"
    _ok("train", scene, "-m", "kmeans", "-k", "3", "-o", model, "-q")
    facts = read_header(model).band_facts
    assert [f["description"] for f in facts] == ["red", "green", "blue", "nir"]
    assert {f["dtype"] for f in facts} == {"uint8"}


def test_another_band_order_or_value_range_is_warned_about(make_scene, tmp_path):
    import warnings

    import rasterio

    from lcmap import api
    from lcmap.errors import ModelMismatchWarning

    a = make_scene("a.tif")
    with rasterio.open(a, "r+") as dst:
        dst.descriptions = ("red", "green", "blue", "nir")
    model = tmp_path / "k.lcmap"
    api.train([a], model, method=MethodSpec("kmeans", classes=3))
    # Same sensor, same order: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelMismatchWarning)
        api.segment(make_scene("same.tif", seed=3), tmp_path / "s.tif", model=model)
    # Bands in another order.
    b = make_scene("b.tif")
    with rasterio.open(b, "r+") as dst:
        dst.descriptions = ("nir", "red", "green", "blue")
    with pytest.warns(ModelMismatchWarning, match="description 'nir' \\(model: 'red'\\) on band 1"):
        api.segment(b, tmp_path / "b_map.tif", model=model)
    # Values on another scale (uint16, 100 times the values), bands undescribed.
    c = make_scene("c.tif", dtype="uint16")
    with pytest.warns(ModelMismatchWarning) as record:
        api.segment(c, tmp_path / "c_map.tif", model=model)
    (message,) = [str(w.message) for w in record if w.category is ModelMismatchWarning]
    assert "dtype 'uint16' (model: 'uint8') on bands 1,2,3,4" in message
    assert "values" in message and "\n" not in message
