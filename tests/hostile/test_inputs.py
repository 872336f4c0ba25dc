"""Hostile inputs: crafted model headers and weights, special files, odd rasters. Each gives a
correct output or one clear line, never a traceback, a hang or Python's "Exception ignored"."""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from tests.cli._cli import one_line_error, run


def _safetensors(path, header):
    """A safetensors file with this JSON header (or raw header text) and no tensors."""
    text = header if isinstance(header, str) else json.dumps(header)
    path.write_bytes(struct.pack("<Q", len(text.encode())) + text.encode())
    return path


@pytest.mark.parametrize(
    "header",
    [
        {"__metadata__": ["lcmap"]},
        {"__metadata__": {"lcmap": 5}},
        {"__metadata__": {"lcmap": "[" * 100_000 + "]" * 100_000}},
        '{"__metadata__": ' + "[" * 100_000 + "]" * 100_000 + "}",
        [1, 2],
    ],
    ids=["metadata-list", "non-string", "deep-field", "deep-header", "header-list"],
)
@pytest.mark.parametrize("command", ["info", "segment"])
def test_crafted_model_headers_are_one_line(make_scene, tmp_path, header, command):
    model = _safetensors(tmp_path / "m.lcmap", header)
    if command == "info":
        out = one_line_error(run("info", model))
    else:
        out = one_line_error(
            run("segment", make_scene(), "-o", tmp_path / "o.tif", "--model", model, "-q")
        )
    assert "not a valid lcmap model file" in out


@pytest.mark.parametrize("kind", ["fifo", "folder", "loop"])
def test_a_model_that_is_not_a_regular_file_is_named_so(tmp_path, kind):
    path = tmp_path / "m.lcmap"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(path)
    out = one_line_error(run("info", path))
    assert "not found" not in out
    assert {"fifo": "not a regular file", "folder": "a folder", "loop": "symbolic links"}[
        kind
    ] in out


@pytest.mark.parametrize("command", ["segment", "vectorize", "evaluate", "info"])
def test_a_fifo_as_input_is_refused_without_blocking(tmp_path, command):
    fifo = tmp_path / "in.tif"
    os.mkfifo(fifo)
    args = {
        "segment": ["-o", tmp_path / "o.tif", "-k", "3"],
        "evaluate": [fifo],
        "info": [],
        "vectorize": ["-o", tmp_path / "o.gpkg"],
    }[command]
    code = "from lcmap.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, command, fifo, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_weights_holding_code_are_refused_in_one_line(make_scene, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    weights = tmp_path / "w.pth"
    torch.save({"model": Payload()}, weights)
    result = run(
        "segment", make_scene(), "-o", tmp_path / "o.tif", "-m", "stego", "--weights", weights, "-q"
    )
    out = one_line_error(result)
    assert "holds code" in out and "weights_only" not in out and "ran" not in result.output


def test_an_empty_weights_file_is_one_line(make_scene, tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    out = one_line_error(
        run(
            "segment",
            make_scene(),
            "-o",
            tmp_path / "o.tif",
            "-m",
            "stego",
            "--weights",
            weights,
            "-q",
        )
    )
    assert "empty" in out


def _float_scene(path, data):
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4000000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_nan_pixels_without_declared_nodata_are_missing_data(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.random((3, 120, 140), dtype=np.float32)
    data[:, 30:50, 40:70] = np.nan
    data[1, 90:95, 10:20] = np.inf
    scene = _float_scene(tmp_path / "nan.tif", data)
    result = run("segment", scene, "-o", tmp_path / "o.tif", "-m", "kmeans", "-k", "3", "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "o.tif") as src:
        labels = src.read(1)
        assert (labels[30:50, 40:70] == src.nodata).all()
        assert (labels[90:95, 10:20] == src.nodata).all()
        assert (labels[:30] != src.nodata).all()


def test_an_all_nan_scene_is_one_line(tmp_path):
    scene = _float_scene(tmp_path / "nan.tif", np.full((3, 50, 50), np.nan, np.float32))
    out = one_line_error(run("segment", scene, "-o", tmp_path / "o.tif", "-m", "kmeans", "-q"))
    assert "no valid pixels" in out


def test_a_vrt_of_mixed_band_types_is_one_line(make_scene, tmp_path):
    scene = make_scene()
    bands = "".join(
        f'<VRTRasterBand dataType="{kind}" band="{i}"><SimpleSource><SourceFilename '
        f'relativeToVRT="1">{scene.name}</SourceFilename><SourceBand>{i}</SourceBand>'
        "</SimpleSource></VRTRasterBand>"
        for i, kind in enumerate(["Byte", "Float32", "Int16"], start=1)
    )
    vrt = tmp_path / "mixed.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="517" rasterYSize="389">{bands}</VRTDataset>')
    out = one_line_error(run("segment", vrt, "-o", tmp_path / "o.tif", "-k", "3", "-q"))
    assert "different data types" in out


def test_an_undecodable_gdal_message_prints_no_python_traceback(make_scene, tmp_path):
    """A damaged map whose metadata makes GDAL print non-UTF-8 bytes: rasterio's log callback
    fails to decode them, which Python would print as 'Exception ignored'."""
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q").exit_code == 0
    data = (tmp_path / "m.tif").read_bytes()
    at = data.index(b"<GDALMetadata>") + 7  # "<GDALMe?adata>": a name that is not UTF-8
    (tmp_path / "bad.tif").write_bytes(data[:at] + b"\xf2" + data[at + 1 :])
    code = "from lcmap.cli import main; main()"
    for args in (["vectorize", "bad.tif", "-o", "v.gpkg"], ["evaluate", "bad.tif", "m.tif"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stderr
        assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
        assert "UnicodeDecodeError" not in done.stderr, done.stderr


def test_a_map_of_a_map_keeps_its_own_tags(make_scene, tmp_path):
    """A label map as the scene: its CLASS_NAMES and overview tags are the new map's own."""
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "a.tif", "-k", "3", "-q").exit_code == 0
    result = run("segment", tmp_path / "a.tif", "-o", tmp_path / "b.tif", "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "b.tif") as src:
        assert len(json.loads(src.tags()["CLASS_NAMES"])) == 2


def test_vectorize_warns_of_a_class_with_no_polygon(make_scene, tmp_path, caplog):
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q").exit_code == 0
    result = run("vectorize", tmp_path / "m.tif", "-o", tmp_path / "v.gpkg", "--class-ids", "999")
    assert result.exit_code == 0
    assert "no polygon of class 999" in result.output


def test_evaluate_refuses_a_multi_band_raster(make_scene, tmp_path):
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q").exit_code == 0
    out = one_line_error(run("evaluate", tmp_path / "m.tif", scene, "-q"))
    assert "4 bands" in out


def test_evaluate_names_classes_from_the_truth(make_scene, tmp_path):
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "t.tif", "-k", "3", "-q").exit_code == 0
    result = run("evaluate", tmp_path / "t.tif", tmp_path / "t.tif", "--json", "-", "-q")
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json.loads(result.stdout)["classes"]]
    assert names == ["class 0", "class 1", "class 2"]


def test_a_scene_list_on_stdin(make_scene, tmp_path):
    a, b = make_scene("a.tif"), make_scene("b.tif", seed=1)
    code = "from lcmap.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "segment", "@-", "-o", "out/", "-k", "3", "-q"],
        input=f"{a.name}\n# a comment\n{b.name}\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"a.tif", "b.tif", "mosaic.vrt"}


def test_an_index_saved_by_excel_is_read(make_scene, tmp_path):
    from lcmap.eval import read_index

    scene = make_scene()
    (tmp_path / "index.csv").write_bytes(
        b"\xef\xbb\xbfset,name,scene,truth,classes\n"
        + f"s,a,{scene.name},{scene.name},3\n".encode()
    )
    assert [e.name for e in read_index(tmp_path / "index.csv")] == ["a"]


def test_a_scene_too_wide_for_memory_is_one_line_before_any_work(make_scene, tmp_path):
    scene = make_scene()
    vrt = tmp_path / "wide.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="2147483647" rasterYSize="1"><VRTRasterBand dataType="Byte" '
        f'band="1"><SimpleSource><SourceFilename relativeToVRT="1">{scene.name}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )
    out = one_line_error(run("segment", vrt, "-o", tmp_path / "o.tif", "-k", "3", "-q"))
    assert "2147483647 px wide" in out and not (tmp_path / "o.tif").exists()
