"""``lcmap.workflows.scenes``: several scenes, one model, one meaning per label; a failed scene
is named and the others finish."""

from pathlib import Path

import numpy as np
import pytest
import rasterio
from _helpers import DATA
from typer.testing import CliRunner

from lcmap.cli import app

RGB_PARTS = [DATA / "rasterio" / f"rgb{i}.tif" for i in range(1, 5)]


needs_parts = pytest.mark.skipif(not RGB_PARTS[0].exists(), reason="rgb1-4.tif absent")


def overlap(a: Path, b: Path) -> tuple[np.ndarray, np.ndarray]:
    """The labels of two maps on the ground they share (same grid, whole-pixel offsets)."""
    from rasterio.windows import from_bounds

    with rasterio.open(a) as sa, rasterio.open(b) as sb:
        left, right = max(sa.bounds.left, sb.bounds.left), min(sa.bounds.right, sb.bounds.right)
        bottom, top = max(sa.bounds.bottom, sb.bounds.bottom), min(sa.bounds.top, sb.bounds.top)
        wa = from_bounds(left, bottom, right, top, sa.transform).round_offsets().round_lengths()
        wb = from_bounds(left, bottom, right, top, sb.transform).round_offsets().round_lengths()
        return sa.read(1, window=wa), sb.read(1, window=wb)


@needs_parts
def test_many_scenes_one_model_one_meaning(tmp_path: Path) -> None:
    """rgb1-4 are overlapping cuts of one scene: where two overlap, their maps agree.

    The overlaps are the scenes' edge rows and columns, where each map's local features see
    its own mirrored border, hence agreement short of 1."""
    result = CliRunner().invoke(
        app,
        [
            "segment",
            *map(str, RGB_PARTS),
            "-o",
            f"{tmp_path}/maps/",
            "-m",
            "kmeans",
            "-k",
            "4",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    maps = [tmp_path / "maps" / f"rgb{i}.tif" for i in range(1, 5)]
    shas = {rasterio.open(m).tags()["LCMAP_MODEL_SHA256"] for m in maps}
    assert len(shas) == 1 and (tmp_path / "maps" / "model.lcmap").is_file()
    for a, b in [(0, 1), (0, 2), (1, 3), (2, 3)]:
        la, lb = overlap(maps[a], maps[b])
        valid = (la != 255) & (lb != 255)
        assert valid.sum() > 100 and (la[valid] == lb[valid]).mean() >= 0.85, (a, b)
    with rasterio.open(tmp_path / "maps" / "mosaic.vrt") as mosaic:
        assert mosaic.crs == rasterio.open(maps[0]).crs
        assert mosaic.colormap(1)[0] == rasterio.open(maps[0]).colormap(1)[0]
        assert set(np.unique(mosaic.read(1))) <= {0, 1, 2, 3, 255}
    # In QGIS the mosaic opens as each map does: its K classes, named, in the maps' colours
    # (its default style mosaic.qml), and GDAL lists the names as its categories.
    import xml.etree.ElementTree as ET

    entries = ET.parse(tmp_path / "maps" / "mosaic.qml").getroot().findall(".//paletteEntry")
    colours = rasterio.open(maps[0]).colormap(1)
    assert [e.get("label") for e in entries] == [f"class {i}" for i in range(4)]
    assert [e.get("color") for e in entries] == [
        "#{:02x}{:02x}{:02x}".format(*colours[i][:3]) for i in range(4)
    ]
    vrt = ET.parse(tmp_path / "maps" / "mosaic.vrt").getroot()
    assert [c.text for c in vrt.iter("Category")] == [f"class {i}" for i in range(4)]
    # A second run keeps that style unless told to replace it, before any work.
    (tmp_path / "maps" / "mosaic.vrt").unlink()
    again = CliRunner().invoke(
        app, ["segment", *map(str, RGB_PARTS), "-o", f"{tmp_path}/maps/", "-k", "4", "-q"]
    )
    assert again.exit_code == 1 and "mosaic.qml exists" in again.output
    # A mosaic read as a scene is never replaced by the mosaic of the run, even with
    # --overwrite.
    (tmp_path / "maps" / "mosaic.vrt").write_bytes((tmp_path / "maps" / "rgb1.tif").read_bytes())
    scenes = [str(tmp_path / "maps" / "mosaic.vrt"), str(RGB_PARTS[1])]
    again = CliRunner().invoke(
        app, ["segment", *scenes, "-o", f"{tmp_path}/maps/", "-k", "4", "--overwrite", "-q"]
    )
    assert again.exit_code == 1 and "is the input" in again.output


@needs_parts
def test_a_failed_scene_is_named_and_the_others_finish(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a raster")
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# scenes\n{RGB_PARTS[0]}\n{bad}\n{RGB_PARTS[1]}\n")
    out = tmp_path / "maps"
    result = CliRunner().invoke(
        app, ["segment", f"@{listing}", "-o", f"{out}/", "-m", "kmeans", "-k", "3", "-q"]
    )
    assert result.exit_code == 1
    assert "broken.tif failed" in result.output and "1 of 3 scenes failed" in result.output
    assert (out / "rgb1.tif").is_file() and (out / "rgb2.tif").is_file()
    assert not (out / "broken.tif").exists()


@needs_parts
def test_two_scenes_with_one_name_are_refused_before_any_work(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "rgb1.tif"
    twin.write_bytes(RGB_PARTS[0].read_bytes())
    result = CliRunner().invoke(
        app, ["segment", str(RGB_PARTS[0]), str(twin), "-o", f"{tmp_path}/maps/", "-q"]
    )
    assert result.exit_code == 1 and "would both be mapped to" in result.output
    assert not list((tmp_path / "maps").glob("*"))


@needs_parts
def test_the_method_chosen_for_many_scenes_is_said_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["segment", *map(str, RGB_PARTS[:2]), "-o", f"{tmp_path}/maps/", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("method: ")]
    assert len(said) == 1 and said[0].startswith("method: kmeans (300 m pixels;"), said
