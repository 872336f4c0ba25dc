"""Tests for lcmap.io.vector: windowed polygonisation, dissolve across windows, formats, errors."""

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio import features
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import shape

from lcmap.errors import (
    InputNotFoundError,
    InvalidOptionError,
    InvalidSceneError,
    NoGeoreferenceWarning,
    OutputExistsError,
    OutputPathError,
)
from lcmap.io.legend import CLASS_NAMES_TAG
from lcmap.io.vector import vectorize

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CHESAPEAKE = (
    SHARED / "data" / "chesapeake_labels" / "Baywide_13Class_20132014_E1300000_N1770000.tif"
)

RES = 2.5  # metres: pixel area 6.25 m²
NODATA = 255
WINDOW = 64  # small windows so that regions cross many window edges


def write_labels(
    path: Path,
    labels: np.ndarray,
    *,
    nodata: float | None = NODATA,
    crs: str | None = "EPSG:32618",
    tags: dict[str, str] | None = None,
) -> Path:
    """Write a tiled single-band label GeoTIFF (or a multi-band one for a 3-D array)."""
    array = labels if labels.ndim == 3 else labels[None]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": array.shape[2],
        "height": array.shape[1],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
    }
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(500000, 4000000, RES, RES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array)
            if tags:
                dst.update_tags(**tags)
    return path


def blob_labels(height: int = 389, width: int = 517, seed: int = 0) -> np.ndarray:
    """Blobby regions of classes 0-3 (holes, odd shapes), plus hand-made cases at window edges.

    - a nodata box in the top-left corner;
    - class 5: a ring centred on the window corner (128, 128), so a region with a hole spans
      four windows;
    - class 6: a U whose two arms are apart in their window and meet only in the window below;
    - class 7: two squares touching only at the window corner (64, 64): two regions.
    """
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(height, width)), 4)
    labels = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75])).astype(np.uint8)
    labels[:40, :50] = NODATA
    labels[110:147, 110:147] = 5
    labels[118:139, 118:139] = 1
    labels[20:70, 200:204] = 6
    labels[20:70, 212:216] = 6
    labels[66:70, 200:216] = 6
    labels[54:64, 54:64] = 7
    labels[64:74, 64:74] = 7
    labels[54:64, 64:74] = 0
    labels[64:74, 54:64] = 0
    return labels


def whole_raster_polygons(path: Path, wanted: set[int] | None = None) -> list[tuple[int, Any]]:
    """Reference: rasterio.features.shapes over the whole raster at once."""
    with rasterio.open(path) as src:
        data, valid = src.read(1), src.read_masks(1) > 0
        transform = src.transform
    if wanted is not None:
        valid &= np.isin(data, list(wanted))
    return [
        (int(v), shape(g))
        for g, v in features.shapes(data, mask=valid, connectivity=4, transform=transform)
    ]


def signatures(items: list[tuple[int, Any]]) -> list[tuple[float, ...]]:
    """(class, area, bounds) of each polygon, sorted: equal lists mean the same regions."""
    return sorted((c, round(g.area, 3), *np.round(g.bounds, 3)) for c, g in items)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    labels = blob_labels()
    path = write_labels(tmp_path_factory.mktemp("blobs") / "labels.tif", labels)
    return path, labels


@pytest.fixture(scope="module")
def blobs_gpkg(
    blobs: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Any]:
    out = tmp_path_factory.mktemp("out") / "labels.gpkg"
    calls: list[tuple[int, int]] = []
    result = vectorize(
        blobs[0], out, window_size=WINDOW, progress=lambda d, t: calls.append((d, t))
    )
    return result, gpd.read_file(out), calls


def test_area_per_class_equals_pixel_count_times_pixel_area(blobs, blobs_gpkg) -> None:
    _, labels = blobs
    result, frame, _ = blobs_gpkg
    for cls in np.unique(labels[labels != NODATA]):
        expected = (labels == cls).sum() * RES * RES
        assert frame.area[frame["class"] == cls].sum() == pytest.approx(expected, rel=1e-12)
        assert frame["area"][frame["class"] == cls].sum() == pytest.approx(expected, rel=1e-12)
        assert result.area_per_class[int(cls)] == pytest.approx(expected, rel=1e-12)


def test_regions_spanning_windows_are_one_polygon_each(blobs, blobs_gpkg) -> None:
    path, _ = blobs
    result, frame, _ = blobs_gpkg
    assert result.windows == 9 * 7
    reference = whole_raster_polygons(path)
    ours = [(int(c), g) for c, g in zip(frame["class"], frame.geometry, strict=True)]
    assert len(ours) == len(reference)
    assert signatures(ours) == signatures(reference)
    # The hand-made cases: ring with its hole, U joined in the window below, corner-touching.
    assert (frame["class"] == 5).sum() == 1
    ring = frame.geometry[frame["class"] == 5].iloc[0]
    assert ring.geom_type == "Polygon" and len(ring.interiors) == 1
    assert (frame["class"] == 6).sum() == 1
    assert (frame["class"] == 7).sum() == 2


def test_nodata_excluded_geometries_valid_and_crs_kept(blobs, blobs_gpkg) -> None:
    _, frame, calls = blobs_gpkg
    assert NODATA not in set(frame["class"])
    nodata_box = shapely.box(500000, 4000000 - 40 * RES, 500000 + 50 * RES, 4000000)
    assert frame.geometry.intersection(nodata_box).area.max() == pytest.approx(0)
    assert frame.geometry.is_valid.all()
    assert set(frame.geom_type) == {"Polygon"}
    assert frame.crs.to_epsg() == 32618
    assert frame["perimeter"].to_numpy() == pytest.approx(frame.length.to_numpy())
    assert calls[-1][0] == calls[-1][1] and len(calls) == 9 * 7 + 1


def test_window_size_does_not_change_the_polygons(blobs, tmp_path: Path) -> None:
    result = vectorize(blobs[0], tmp_path / "w.fgb", window_size=100)
    frame = gpd.read_file(tmp_path / "w.fgb")
    reference = whole_raster_polygons(blobs[0])
    assert result.polygons == len(reference)
    assert signatures(list(zip(frame["class"], frame.geometry, strict=True))) == signatures(
        reference
    )


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".parquet", ".geojson"])
def test_each_format_round_trips(suffix: str, tmp_path: Path) -> None:
    labels = blob_labels(97, 131)
    path = write_labels(tmp_path / "labels.tif", labels)
    out = tmp_path / f"labels{suffix}"
    result = vectorize(path, out, window_size=32, legend=None)
    frame = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
    assert len(frame) == result.polygons == len(whole_raster_polygons(path))
    assert list(frame.columns) == ["class", "class_name", "area", "perimeter", "geometry"]
    assert frame["class"].dtype.kind == "i"
    assert frame.geometry.is_valid.all()
    assert not list(tmp_path.glob(".labels*"))  # no temporary file left behind
    if suffix == ".geojson":
        # RFC 7946: WGS 84 longitude/latitude; area is still in the raster's CRS units.
        assert frame.crs.to_epsg() == 4326
        lon, lat = frame.total_bounds[[0, 1]]
        assert -76 < lon < -74 and 36 < lat < 37
        back = frame.to_crs(32618)
        assert back.area.sum() == pytest.approx(frame["area"].sum(), rel=1e-4)
        assert frame["area"].sum() == pytest.approx((labels != NODATA).sum() * RES * RES)
    else:
        assert frame.crs.to_epsg() == 32618
        assert frame.area.sum() == pytest.approx((labels != NODATA).sum() * RES * RES)


def test_classes_keeps_only_those_labels(blobs, tmp_path: Path) -> None:
    path, labels = blobs
    result = vectorize(path, tmp_path / "c.gpkg", classes=[1, 3], window_size=WINDOW)
    frame = gpd.read_file(tmp_path / "c.gpkg")
    assert set(frame["class"]) == {1, 3}
    assert result.polygons == len(whole_raster_polygons(path, {1, 3}))
    assert frame.area.sum() == pytest.approx(np.isin(labels, [1, 3]).sum() * RES * RES)


def test_min_area_sieves_small_regions_even_across_window_edges(tmp_path: Path) -> None:
    labels = np.ones((150, 170), np.uint8)
    labels[100:120, 100:130] = 2  # 600 px: kept
    for row, col in [(10, 10), (62, 62), (30, 63), (63, 140), (127, 127)]:
        labels[row : row + 2, col : col + 2] = 2  # 4-pixel speckles, some across window edges
    labels[80, 20:27] = 3  # 7-pixel line: below 8 pixels
    path = write_labels(tmp_path / "speckles.tif", labels)
    min_area = 8 * RES * RES
    result = vectorize(path, tmp_path / "s.gpkg", min_area=min_area, window_size=WINDOW)
    frame = gpd.read_file(tmp_path / "s.gpkg")
    assert frame.area.min() >= min_area
    assert result.polygons_per_class == {1: 1, 2: 1}
    assert frame.area[frame["class"] == 2].sum() == pytest.approx(600 * RES * RES)
    assert frame.area.sum() == pytest.approx(labels.size * RES * RES)  # merged, not dropped
    assert result.dropped == 0


def test_min_area_drops_what_cannot_be_merged(tmp_path: Path) -> None:
    labels = np.full((90, 90), NODATA, np.uint8)
    labels[10:40, 10:40] = 1
    labels[60:62, 60:62] = 2  # 4 pixels surrounded by nodata: no neighbour to merge into
    path = write_labels(tmp_path / "island.tif", labels)
    result = vectorize(path, tmp_path / "i.gpkg", min_area=5 * RES * RES, window_size=WINDOW)
    assert result.polygons_per_class == {1: 1}
    assert result.dropped == 1


def test_min_area_beyond_the_window_margin_keeps_large_regions(tmp_path: Path) -> None:
    # 30-pixel threshold with 16-pixel windows: the sieve margin is capped at the window size,
    # so a region cut by the margin must not be mistaken for a small one.
    labels = np.kron(np.arange(30, dtype=np.uint8).reshape(5, 6) % 3, np.ones((20, 20), np.uint8))
    labels[5:7, 5:9] = 2  # 8 px speckle inside class 0
    path = write_labels(tmp_path / "big.tif", labels)
    min_area = 30 * RES * RES
    vectorize(path, tmp_path / "b.gpkg", min_area=min_area, window_size=16)
    frame = gpd.read_file(tmp_path / "b.gpkg")
    assert frame.area.min() >= min_area
    for cls in range(3):
        expected = (np.kron(np.arange(30).reshape(5, 6) % 3, np.ones((20, 20))) == cls).sum()
        assert frame.area[frame["class"] == cls].sum() == pytest.approx(expected * RES * RES)


def test_simplify_keeps_a_valid_coverage_with_fewer_vertices(blobs, blobs_gpkg, tmp_path) -> None:
    _, exact, _ = blobs_gpkg
    vectorize(blobs[0], tmp_path / "s.gpkg", simplify=2 * RES, window_size=WINDOW)
    frame = gpd.read_file(tmp_path / "s.gpkg")
    assert len(frame) == len(exact)
    assert frame.geometry.is_valid.all()
    assert shapely.coverage_is_valid(frame.geometry.values)
    count = shapely.get_num_coordinates
    assert count(frame.geometry.values).sum() < 0.5 * count(exact.geometry.values).sum()
    assert frame.area.sum() == pytest.approx(exact.area.sum(), rel=0.01)


def test_class_names_from_legend_json_csv_and_raster_tag(tmp_path: Path) -> None:
    labels = np.zeros((40, 50), np.uint8)
    labels[:, 25:] = 1
    names = ["water", "forest"]
    tagged = write_labels(tmp_path / "t.tif", labels, tags={CLASS_NAMES_TAG: json.dumps(names)})
    plain = write_labels(tmp_path / "p.tif", labels)
    (tmp_path / "legend.json").write_text(json.dumps({"0": "lake", "1": "wood"}))
    (tmp_path / "legend.csv").write_text("id,name\n0,sea\n1,pine trees\n")

    def names_of(out: str, **kwargs: Any) -> dict[int, Any]:
        written = vectorize(kwargs.pop("src", plain), tmp_path / out, **kwargs).output
        frame = gpd.read_parquet(written) if out.endswith(".parquet") else gpd.read_file(written)
        return dict(zip(frame["class"], frame["class_name"], strict=True))

    assert names_of("tag.gpkg", src=tagged) == {0: "water", 1: "forest"}
    assert names_of("json.gpkg", legend=tmp_path / "legend.json") == {0: "lake", 1: "wood"}
    assert names_of("csv.fgb", legend=tmp_path / "legend.csv", src=tagged) == {
        0: "sea",
        1: "pine trees",
    }
    unnamed = names_of("none.parquet")
    assert all(v is None for v in unnamed.values())


def test_wide_integer_labels_are_kept(tmp_path: Path) -> None:
    labels = np.full((30, 40), 70000, np.uint32)
    labels[:, 20:] = 5
    path = write_labels(tmp_path / "u32.tif", labels, nodata=None)
    result = vectorize(path, tmp_path / "u.gpkg", window_size=16)
    assert result.polygons_per_class == {5: 1, 70000: 1}


def test_empty_result_still_writes_a_readable_file(blobs, tmp_path: Path) -> None:
    for suffix in (".gpkg", ".fgb", ".parquet", ".geojson"):
        out = tmp_path / f"empty{suffix}"
        result = vectorize(blobs[0], out, classes=[42])
        frame = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
        assert result.polygons == len(frame) == 0


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_no_crs_writes_gpkg_but_refuses_geojson(tmp_path: Path) -> None:
    path = write_labels(tmp_path / "nocrs.tif", np.zeros((20, 20), np.uint8), crs=None)
    with pytest.warns(NoGeoreferenceWarning, match="no CRS"):
        assert vectorize(path, tmp_path / "n.gpkg").polygons == 1
    assert gpd.read_file(tmp_path / "n.gpkg").crs is None
    with pytest.raises(InvalidSceneError, match=r"no CRS.*GeoJSON.*EPSG:4326"):
        vectorize(path, tmp_path / "n.geojson")
    assert not (tmp_path / "n.geojson").exists()


def test_bad_input_gives_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    good = write_labels(tmp_path / "good.tif", np.zeros((20, 20), np.uint8))
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    multi = write_labels(tmp_path / "rgb.tif", np.zeros((3, 20, 20), np.uint8))
    floats = write_labels(tmp_path / "float.tif", np.zeros((20, 20), np.float32))
    out = tmp_path / "out.gpkg"
    cases: list[tuple[Any, type[Exception], str, dict[str, Any]]] = [
        (tmp_path / "missing.tif", InputNotFoundError, "not found", {}),
        (text, InvalidSceneError, "not a raster", {}),
        (multi, InvalidSceneError, "3 bands; expected a single-band label raster", {}),
        (floats, InvalidSceneError, "float32 values; expected integer class labels", {}),
        (good, InputNotFoundError, "Legend .* not found", {"legend": tmp_path / "no.csv"}),
        (good, InvalidSceneError, "Legend .* line 2", {"legend": text.with_suffix(".csv")}),
    ]
    text.with_suffix(".csv").write_text("0,water\nforest\n")
    for src, error, message, kwargs in cases:
        with pytest.raises(error, match=message):
            vectorize(src, out, **kwargs)
    assert not out.exists()
    with pytest.raises(OutputPathError, match=r"extension '\.shp'; expected one of \.gpkg"):
        vectorize(good, tmp_path / "out.shp")
    with pytest.raises(OutputPathError, match="does not exist"):
        vectorize(good, tmp_path / "nowhere" / "out.gpkg")


def test_existing_output_is_kept_without_overwrite(tmp_path: Path) -> None:
    good = write_labels(tmp_path / "good.tif", np.zeros((20, 20), np.uint8))
    out = tmp_path / "out.fgb"
    out.write_text("precious")
    with pytest.raises(OutputExistsError, match="exists; pass overwrite=True"):
        vectorize(good, out)
    assert out.read_text() == "precious"
    vectorize(good, out, overwrite=True)
    assert len(gpd.read_file(out)) == 1


@pytest.mark.skipif(not CHESAPEAKE.is_file(), reason="../shared/data absent")
def test_real_chesapeake_window_matches_whole_window_shapes(tmp_path: Path) -> None:
    crop = tmp_path / "crop.tif"
    with rasterio.open(CHESAPEAKE) as src:
        window = Window(7500, 3000, 1500, 1500)
        profile = src.profile | {
            "width": 1500,
            "height": 1500,
            "transform": src.window_transform(window),
        }
        with rasterio.open(crop, "w", **profile) as dst:
            dst.write(src.read(1, window=window), 1)
    result = vectorize(crop, tmp_path / "crop.gpkg", window_size=512)
    reference = whole_raster_polygons(crop)
    assert result.polygons == len(reference) > 50
    frame = gpd.read_file(tmp_path / "crop.gpkg")
    assert signatures(list(zip(frame["class"], frame.geometry, strict=True))) == signatures(
        reference
    )
    assert frame.crs == gpd.GeoSeries(crs=profile["crs"].to_wkt()).crs


@pytest.mark.slow
@pytest.mark.skipif(not CHESAPEAKE.is_file(), reason="../shared/data absent")
def test_full_chesapeake_raster_vectorises_in_bounded_memory(tmp_path: Path) -> None:
    # In a fresh process, so that peak RSS measures this run only. The raster is 10000 x 10000:
    # holding its labels and validity mask alone would take 200 MB.
    script = textwrap.dedent(
        f"""
        import json, resource
        import geopandas, pyogrio, rasterio, shapely
        from lcmap.io.vector import vectorize
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = vectorize({str(CHESAPEAKE)!r}, {str(tmp_path / "full.gpkg")!r})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"polygons": result.polygons, "extra_mb": (peak - base) / 1024}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["polygons"] == 1905  # = rasterio.features.shapes on the whole raster
    assert figures["extra_mb"] < 150


def test_truncated_raster_is_reported_as_corrupt(tmp_path: Path) -> None:
    labels = np.random.default_rng(0).integers(0, 4, (300, 300), dtype=np.uint8)
    path = write_labels(tmp_path / "full.tif", labels)
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidSceneError, match=r"could not be read.*truncated or corrupt"):
        vectorize(cut, tmp_path / "cut.gpkg", window_size=64)
    assert not (tmp_path / "cut.gpkg").exists()


def test_sizes_larger_than_the_map_are_refused_in_its_units(tmp_path: Path) -> None:
    """A --min-area meant in m² (or a --simplify in m) on a map in degrees would drop every
    region: one line that names the units and a pixel's size, and no file."""
    path = tmp_path / "geo.tif"
    profile = {"driver": "GTiff", "width": 40, "height": 30, "count": 1, "dtype": "uint8"}
    transform = from_origin(-74.7, -8.3, 0.0008, 0.0008)  # about 89 m pixels near the equator
    with rasterio.open(path, "w", crs="EPSG:4326", transform=transform, **profile) as dst:
        dst.write(np.arange(1200, dtype=np.uint8).reshape(1, 30, 40) % 3)
    with pytest.raises(InvalidOptionError, match=r"square degrees.*about 7,\d{3} m²"):
        vectorize(path, tmp_path / "g.gpkg", min_area=1000)
    assert not (tmp_path / "g.gpkg").exists()
    with pytest.raises(InvalidOptionError, match=r"simplify=1 .* in degrees.*about 8\d m\)"):
        vectorize(path, tmp_path / "g.gpkg", simplify=1)
    assert not (tmp_path / "g.gpkg").exists()
    assert vectorize(path, tmp_path / "g.gpkg", min_area=1e-6, simplify=1e-4).polygons > 0
    metric = write_labels(tmp_path / "m.tif", np.zeros((20, 20), np.uint8))
    with pytest.raises(InvalidOptionError, match="square metres"):
        vectorize(metric, tmp_path / "m.gpkg", min_area=RES * RES * 401)
