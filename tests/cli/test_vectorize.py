"""Tests for ``lcmap vectorize``: exit codes and messages."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from lcmap.cli import app

runner = CliRunner()


def write_labels(path: Path, labels: np.ndarray) -> Path:
    array = labels if labels.ndim == 3 else labels[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[2],
        height=array.shape[1],
        count=array.shape[0],
        dtype=array.dtype.name,
        nodata=255,
        crs="EPSG:32618",
        transform=from_origin(500000, 4000000, 1.0, 1.0),
    ) as dst:
        dst.write(array)
    return path


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    array = np.zeros((61, 83), np.uint8)
    array[:, 40:] = 1
    array[10:13, 10:13] = 2  # 9 m²
    array[50:, :5] = 255
    return write_labels(tmp_path / "landcover.tif", array)


def test_help_says_geojson_is_epsg_4326_and_shows_examples() -> None:
    result = runner.invoke(app, ["vectorize", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "EPSG:4326" in result.output and "RFC 7946" in result.output
    assert "$ lcmap vectorize landcover.tif -o landcover.gpkg --min-area 50 --simplify 1" in (
        result.output
    )


def test_vectorize_writes_polygons(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "landcover.gpkg"
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "--min-area", "10"])
    assert result.exit_code == 0, result.output
    assert "Wrote 2 polygons of 2 classes" in result.output
    frame = gpd.read_file(out)
    assert sorted(frame["class"]) == [0, 1]
    assert frame.area.sum() == pytest.approx(61 * 83 - 11 * 5)


def test_classes_option_filters(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "two.fgb"
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "--class-ids", "2"])
    assert result.exit_code == 0, result.output
    assert list(gpd.read_file(out)["class"]) == [2]


def test_existing_output_needs_overwrite(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "landcover.parquet"
    out.write_text("keep me")
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out)])
    assert result.exit_code == 1
    assert "exists; pass --overwrite to replace it" in result.output
    assert "Traceback" not in result.output
    assert out.read_text() == "keep me"
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(gpd.read_parquet(out)) == 3


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "not found"),
        ("not_raster", "not a raster"),
        ("multiband", "expected a single-band label raster"),
        ("float", "expected integer class labels"),
        ("extension", "expected one of .gpkg, .fgb, .parquet, .geojson"),
        ("no_folder", "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(case: str, message: str, tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    out = tmp_path / "out.gpkg"
    if case == "not_raster":
        src.write_text("hello")
    elif case == "multiband":
        write_labels(src, np.zeros((2, 8, 8), np.uint8))
    elif case == "float":
        write_labels(src, np.zeros((8, 8), np.float32))
    elif case in ("extension", "no_folder"):
        write_labels(src, np.zeros((8, 8), np.uint8))
        out = tmp_path / "out.shp" if case == "extension" else tmp_path / "no" / "out.gpkg"
    result = runner.invoke(app, ["vectorize", str(src), "-o", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_bad_classes_is_a_usage_error(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.gpkg"
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "--class-ids", "a,b"])
    assert result.exit_code == 2
    assert "comma-separated list of class ids" in result.output
    result = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "--min-area", "-1"])
    assert result.exit_code == 2


def test_min_area_holds_on_simplified_polygons(tmp_path: Path) -> None:
    """Simplifying after the area filter can shrink a polygon below it: not in the output."""
    rng = np.random.default_rng(0)
    array = (rng.random((120, 120)) > 0.5).astype(np.uint8)  # salt and pepper: many shapes
    array = np.kron(array[::6, ::6], np.ones((6, 6), np.uint8))[:120, :120]
    labels = write_labels(tmp_path / "noisy.tif", array)
    out = tmp_path / "v.gpkg"
    r = runner.invoke(
        app, ["vectorize", str(labels), "-o", str(out), "--min-area", "60", "--simplify", "4", "-q"]
    )
    assert r.exit_code == 0, r.output
    areas = gpd.read_file(out).geometry.area
    assert len(areas) and (areas >= 60 * (1 - 1e-9)).all()


def test_flatgeobuf_layer_is_named_after_the_target(labels: Path, tmp_path: Path) -> None:
    import pyogrio

    out = tmp_path / "landcover.fgb"
    r = runner.invoke(app, ["vectorize", str(labels), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert [name for name, _ in pyogrio.list_layers(out)] == ["landcover"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landcover.fgb", "landcover.tif"]


@pytest.mark.parametrize(
    "option",
    [["--min-area", "inf"], ["--min-area", "1e308"], ["--simplify", "inf"], ["--min-area", "nan"]],
)
def test_extreme_areas_and_tolerances_are_one_line(labels: Path, tmp_path: Path, option) -> None:
    r = runner.invoke(
        app, ["vectorize", str(labels), "-o", str(tmp_path / "v.gpkg"), *option, "-q"]
    )
    assert "Traceback" not in r.output
    if option[1] == "1e308":  # finite, but larger than the map: every region would go
        assert r.exit_code == 1 and "would drop every region" in r.output
        assert not (tmp_path / "v.gpkg").exists()
    elif option[1] == "nan":  # refused by the option parser: a usage error (exit 2)
        assert r.exit_code == 2 and "--min-area" in r.output
    else:
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert not (tmp_path / "v.gpkg").exists()


def test_the_removed_classes_spelling_is_a_usage_error(labels: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["vectorize", str(labels), "-o", str(tmp_path / "v.gpkg"), "--classes", "1"]
    )
    assert r.exit_code == 2 and not (tmp_path / "v.gpkg").exists()
