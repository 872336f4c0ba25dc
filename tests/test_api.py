"""Contracts of ``lcmap.api.segment``: grid, nodata, seams, label consistency, COG, atomicity."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import rasterio
from _helpers import DATA, quadrant_truth, read, write_raster
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from scipy.optimize import linear_sum_assignment

from lcmap import api
from lcmap.errors import NoGeoreferenceWarning, NoNodataWarning
from lcmap.models import read_header
from lcmap.workflows.segment import GDAL_CACHE_MB
from lcmap.workflows.specs import MethodSpec, RunSpec, TilingSpec


def _ari_like(pred, truth):
    """Fraction of pixels right after the best one-to-one matching of labels."""
    k = max(pred.max(), truth.max()) + 1
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (pred.ravel(), truth.ravel()), 1)
    r, c = linear_sum_assignment(-cm)
    return cm[r, c].sum() / cm.sum()


def test_same_grid_out_as_in(make_scene, tmp_path):
    scene = make_scene()
    result = api.segment(
        scene, tmp_path / "map.tif", method=MethodSpec(classes=4), run=RunSpec(seed=0)
    )
    with rasterio.open(scene) as src, rasterio.open(result.output) as out:
        assert (out.width, out.height) == (src.width, src.height)
        assert out.crs == src.crs and out.transform == src.transform
        assert out.count == 1 and out.dtypes[0] == "uint8" and out.nodata == 255


def test_kmeans_recovers_the_quadrants(make_scene, tmp_path):
    scene = make_scene()
    labels, _ = read(api.segment(scene, tmp_path / "map.tif", method=MethodSpec(classes=4)).output)
    assert _ari_like(labels, quadrant_truth(*labels.shape)) > 0.99


def test_nodata_in_is_nodata_out(make_scene, tmp_path):
    scene = make_scene(nodata=0, nodata_box=True)
    labels, _ = read(api.segment(scene, tmp_path / "map.tif", method=MethodSpec(classes=4)).output)
    with rasterio.open(scene) as src:
        nodata = src.dataset_mask() == 0
    assert nodata.sum() == 50 * 70
    np.testing.assert_array_equal(labels == 255, nodata)


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float32"])
def test_other_dtypes_map(make_scene, tmp_path, dtype):
    labels, _ = read(
        api.segment(
            make_scene(dtype=dtype), tmp_path / "m.tif", method=MethodSpec(classes=4)
        ).output
    )
    assert _ari_like(labels, quadrant_truth(*labels.shape)) > 0.99


def test_mask_band_is_nodata(make_scene, tmp_path):
    scene = make_scene()
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(scene, "r+") as dst:
        mask = np.full((dst.height, dst.width), 255, dtype=np.uint8)
        mask[100:120, 200:260] = 0
        dst.write_mask(mask)
    labels, _ = read(api.segment(scene, tmp_path / "m.tif", method=MethodSpec(classes=4)).output)
    assert (labels[100:120, 200:260] == 255).all()
    assert (labels != 255).sum() == labels.size - 20 * 60


@pytest.mark.parametrize("smooth", [0, 2])
def test_map_does_not_depend_on_tile_size(make_scene, tmp_path, smooth):
    scene = make_scene()
    model = tmp_path / "km.lcmap"
    maps = []
    for i, tile in enumerate([64, 256, 100_000]):
        out = tmp_path / f"map{i}.tif"
        if i:
            api.segment(scene, out, model=model, tiling=TilingSpec(tile=tile))
        else:
            fitted = MethodSpec(classes=5, options={"smooth": smooth})
            api.segment(scene, out, method=fitted, save_model=model, tiling=TilingSpec(tile=tile))
        maps.append(read(out)[0])
    np.testing.assert_array_equal(maps[0], maps[1])
    np.testing.assert_array_equal(maps[0], maps[2])


def test_too_small_halo_shows_seams_but_receptive_field_halo_does_not(make_scene, tmp_path):
    # smooth=3 makes the label depend on a 7x7 neighbourhood; halo 0 cuts it at tile edges.
    # Pure noise, so that the neighbourhood matters everywhere.
    scene = make_scene()
    with rasterio.open(scene, "r+") as dst:
        rng = np.random.default_rng(0)
        dst.write(rng.integers(0, 255, (dst.count, dst.height, dst.width), dtype=np.uint8))
    model = tmp_path / "km.lcmap"
    api.segment(
        scene,
        tmp_path / "whole.tif",
        save_model=model,
        method=MethodSpec(classes=6, options={"smooth": 3}),
        tiling=TilingSpec(tile=100_000),
    )
    whole = read(tmp_path / "whole.tif")[0]
    api.segment(scene, tmp_path / "cut.tif", model=model, tiling=TilingSpec(tile=32, halo=0))
    api.segment(scene, tmp_path / "ok.tif", model=model, tiling=TilingSpec(tile=32))
    assert (read(tmp_path / "cut.tif")[0] != whole).any()
    np.testing.assert_array_equal(read(tmp_path / "ok.tif")[0], whole)


def test_windowed_method_matches_pixelwise_scores(make_scene, tmp_path):
    scene = make_scene()
    a = api.segment(
        scene,
        tmp_path / "a.tif",
        method=MethodSpec("toy", classes=6, options={"windowed": True}),
        tiling=TilingSpec(tile=60),
    )
    b = api.segment(
        scene, tmp_path / "b.tif", method=MethodSpec("toy", classes=6), tiling=TilingSpec(tile=1000)
    )
    assert a.provenance["window"] == {"size": 16, "stride": 8}
    assert a.provenance["tile"] == 64 and a.provenance["halo"] == 8  # tile: a stride multiple
    np.testing.assert_array_equal(read(a.output)[0], read(b.output)[0])


def test_a_halo_too_small_for_the_windows_is_raised(make_scene, tmp_path, caplog):
    caplog.set_level("WARNING", logger="lcmap")
    a = api.segment(
        make_scene(),
        tmp_path / "a.tif",
        method=MethodSpec("toy", classes=6, options={"windowed": True}),
        tiling=TilingSpec(tile=64, halo=3),
    )
    assert a.provenance["halo"] == 8
    assert "halo 3 px raised to 8 px" in caplog.text


def test_labels_mean_the_same_in_two_scenes_through_a_saved_model(make_scene, tmp_path):
    first = make_scene("a.tif", seed=1)
    # Second scene: same covers, other noise, other size, covers in other places (flipped).
    second = make_scene("b.tif", width=300, height=333, seed=2)
    with rasterio.open(second, "r+") as dst:
        dst.write(dst.read()[:, ::-1, ::-1])
    model = tmp_path / "m.lcmap"
    api.segment(first, tmp_path / "a_map.tif", save_model=model, method=MethodSpec(classes=4))
    api.segment(second, tmp_path / "b_map.tif", model=model)
    a, b = read(tmp_path / "a_map.tif")[0], read(tmp_path / "b_map.tif")[0]
    ta, tb = quadrant_truth(*a.shape), quadrant_truth(*b.shape)[::-1, ::-1]
    mapping = {int(t): int(np.bincount(a[ta == t]).argmax()) for t in range(4)}
    assert len(set(mapping.values())) == 4
    for t, label in mapping.items():
        assert (b[tb == t] == label).mean() > 0.99


def test_output_is_a_cog_with_colours_names_and_provenance(make_scene, tmp_path):
    result = api.segment(
        make_scene(width=1500, height=1100), tmp_path / "map.tif", method=MethodSpec(classes=3)
    )
    with rasterio.open(result.output) as out:
        assert out.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert out.block_shapes[0] == (512, 512)
        assert out.overviews(1) == [2, 4]
        assert out.compression.name.lower() in ("deflate", "zstd")
        cmap = out.colormap(1)
        assert len({cmap[i] for i in range(3)}) == 3 and cmap[255][3] == 0
        tags = out.tags()
        assert json.loads(tags["CLASS_NAMES"]) == ["class 0", "class 1", "class 2"]
        prov = json.loads(tags["LCMAP_PROVENANCE"])
        assert prov["method"] == "kmeans" and prov["num_classes"] == 3
    side = json.loads(result.sidecar.read_text())
    assert side["lcmap_version"] and side["config"]["num_classes"] == 3


def test_more_than_255_classes_give_uint16(make_scene, tmp_path):
    result = api.segment(
        make_scene(width=64, height=48), tmp_path / "m.tif", method=MethodSpec("toy", classes=300)
    )
    _, profile = read(result.output)
    assert profile["dtype"] == "uint16" and profile["nodata"] == 65535


def test_same_seed_same_map(make_scene, tmp_path):
    scene = make_scene()
    a = read(
        api.segment(
            scene, tmp_path / "a.tif", method=MethodSpec(classes=6), run=RunSpec(seed=3)
        ).output
    )[0]
    b = read(
        api.segment(
            scene, tmp_path / "b.tif", method=MethodSpec(classes=6), run=RunSpec(seed=3)
        ).output
    )[0]
    np.testing.assert_array_equal(a, b)


def test_scene_without_georeferencing_warns_and_maps(make_scene, tmp_path):
    scene = make_scene(crs=None)
    with pytest.warns(NoGeoreferenceWarning):
        result = api.segment(scene, tmp_path / "m.tif", method=MethodSpec(classes=4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        out = rasterio.open(result.output)
    with out:
        assert out.crs is None and (out.width, out.height) == (517, 389)


def test_scene_without_nodata_warns(make_scene, tmp_path):
    with pytest.warns(NoNodataWarning):
        api.segment(make_scene(), tmp_path / "m.tif", method=MethodSpec(classes=4))


def test_interrupted_run_leaves_nothing(make_scene, tmp_path):
    scene = make_scene(width=700, height=700)
    with pytest.raises(RuntimeError, match="simulated"):
        api.segment(
            scene,
            tmp_path / "m.tif",
            method=MethodSpec("toy", options={"fail_after": 3}),
            run=RunSpec(batch_size=2),
            tiling=TilingSpec(tile=128),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_memory_is_one_band_of_rows(make_scene, tmp_path):
    """Peak numpy allocation does not grow with the scene's height."""
    import tracemalloc

    peaks = []
    # Both heights above what the statistics sample saturates at (32 windows of 256 px).
    for height in (8192, 24576):
        scene = make_scene(f"s{height}.tif", width=256, height=height)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracemalloc.start()
            api.segment(
                scene, tmp_path / f"m{height}.tif", method="toy", tiling=TilingSpec(tile=128)
            )
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0]


@pytest.mark.skipif(not (DATA / "naip").is_dir(), reason="../shared/data absent")
def test_real_naip_scene(tmp_path):
    scene = DATA / "naip" / "naip_m_4709963_se_14_1_20200831.tif"
    result = api.segment(
        scene, tmp_path / "naip.tif", method=MethodSpec(classes=6), tiling=TilingSpec(tile=256)
    )
    with rasterio.open(scene) as src, rasterio.open(result.output) as out:
        assert (out.width, out.height, out.crs, out.transform) == (
            src.width,
            src.height,
            src.crs,
            src.transform,
        )
    assert result.classes_used == 6


@pytest.mark.skipif(not (DATA / "rasterio").is_dir(), reason="../shared/data absent")
def test_real_scene_with_nodata_and_jpeg_in_tiff(tmp_path):
    src_path = DATA / "rasterio" / "RGB.byte.tif"
    result = api.segment(src_path, tmp_path / "rgb.tif", method=MethodSpec(classes=5))
    labels, _ = read(result.output)
    with rasterio.open(src_path) as src:
        np.testing.assert_array_equal(labels == 255, src.dataset_mask() == 0)
    jpeg = DATA / "dubai_dev" / "scenes" / "dubai_t1_1.tif"
    if jpeg.exists():
        with rasterio.open(jpeg) as src:
            assert src.compression.name.lower() == "jpeg"
        assert api.segment(jpeg, tmp_path / "d.tif", method=MethodSpec(classes=5)).classes_used == 5


def test_gdal_block_cache_is_counted_in_megabytes(monkeypatch):
    # rasterio passes an integer GDAL_CACHEMAX to GDAL as bytes: a cache of "256" bytes made
    # every tile read decompress its blocks again (25x slower reads).
    from rasterio._env import get_gdal_config

    from lcmap.io.scene import bounded_gdal_cache

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with bounded_gdal_cache(GDAL_CACHE_MB):
        assert int(get_gdal_config("GDAL_CACHEMAX")) == GDAL_CACHE_MB * 2**20


def test_kmeans_labels_are_the_argmax_of_its_scores():
    import torch

    from lcmap.methods import get_method
    from lcmap.sampling import ArraySampler

    rng = np.random.default_rng(0)
    image = rng.random((3, 96, 80), dtype=np.float32)
    method = get_method("kmeans", num_classes=7, samples=2000)
    method.fit(ArraySampler([image], seed=0))
    batch = torch.from_numpy(np.stack([image, image[:, ::-1].copy()]))
    labels = method.predict_labels(batch)
    assert labels.shape == (2, 96, 80)
    torch.testing.assert_close(labels, method.predict(batch).argmax(dim=1), rtol=0, atol=0)


def test_class_names_reach_gdal_as_categories_and_a_raster_attribute_table(make_scene, tmp_path):
    """GDAL (and so QGIS) reads the names from the .aux.xml: its VRT copy of the map lists them."""
    import rasterio.shutil

    out = tmp_path / "m.tif"
    api.segment(make_scene(), out, method=MethodSpec(classes=3))
    vrt = tmp_path / "m.vrt"
    rasterio.shutil.copy(out, vrt, driver="VRT")
    text = vrt.read_text()
    for i in range(3):
        assert f"<Category>class {i}</Category>" in text
    assert "GDALRasterAttributeTable" in text and "<Name>Class</Name>" in text
    with rasterio.open(out) as src:
        assert src.colormap(1)[255][3] == 0  # nodata transparent


def test_qgis_opens_the_map_with_a_legend_of_its_classes_only(make_scene, tmp_path):
    """MAP.qml, QGIS's default style for MAP.tif: a paletted renderer listing exactly the K
    classes with their names and the colours of the TIFF palette (which itself always has 256
    entries), so QGIS's layer panel does not list 256 classes."""
    import xml.etree.ElementTree as ET

    out = tmp_path / "m.tif"
    api.segment(make_scene(), out, method=MethodSpec(classes=3))
    root = ET.parse(tmp_path / "m.qml").getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None
    assert (renderer.get("type"), renderer.get("band")) == ("paletted", "1")
    entries = renderer.findall("colorPalette/paletteEntry")
    with rasterio.open(out) as src:
        names = json.loads(src.tags()["CLASS_NAMES"])
        palette = src.colormap(1)
    assert [e.get("label") for e in entries] == names == [f"class {i}" for i in range(3)]
    assert [int(e.get("value", "-1")) for e in entries] == [0, 1, 2]
    assert [e.get("color") for e in entries] == [
        "#{:02x}{:02x}{:02x}".format(*palette[i][:3]) for i in range(3)
    ]


def test_provenance_paths_are_relative_and_scene_tags_are_carried(make_scene, tmp_path):
    scene = make_scene()
    with rasterio.open(scene, "r+") as dst:
        dst.update_tags(SYNTHETIC_GEOREF="yes", AREA_OR_POINT="Point")
    (tmp_path / "maps").mkdir()
    model = tmp_path / "k.lcmap"
    api.train([scene], model, method=MethodSpec("kmeans", classes=3))
    out = tmp_path / "maps" / "m.tif"
    result = api.segment(scene, out, model=model)
    assert result.provenance["scene"] == "../scene.tif"
    assert result.provenance["model"] == "../k.lcmap"
    with rasterio.open(out) as src:
        tags = src.tags()
    assert tags["SYNTHETIC_GEOREF"] == "yes" and tags["AREA_OR_POINT"] == "Point"
    assert str(tmp_path) not in tags["LCMAP_PROVENANCE"]


def test_progress_has_one_phase_each_for_fitting_mapping_and_writing(make_scene, tmp_path):
    class Recorder:
        def __init__(self) -> None:
            self.phases: list[str] = []

        def __call__(self, done: int, total: int) -> None:
            assert 0 <= done <= total

        def phase(self, name: str) -> None:
            self.phases.append(name)

    progress = Recorder()
    api.segment(
        make_scene(),
        tmp_path / "m.tif",
        method=MethodSpec(classes=3),
        run=RunSpec(progress=progress),
    )
    assert progress.phases == ["fit kmeans", "map scene.tif", "write COG"]


def _bright_blocks(path, corners, gain=1.0):
    """A 3-band uint16 scene: textured ground and two small, bright, flat blocks, each under 1 %
    of the pixels, so both lie beyond every band's 98th percentile."""
    rng = np.random.default_rng(len(corners[0]) + int(gain * 10))
    data = rng.normal(1000, 60, (3, 256, 256))
    for (row, col), value in zip(corners, (3000, 5000), strict=True):
        data[:, row : row + 22, col : col + 22] = value
    return write_raster(
        path, (data * gain).astype(np.uint16), "EPSG:32618", from_origin(0, 256, 1, 1)
    )


def test_kmeans_keeps_apart_what_lies_beyond_the_percentiles(tmp_path):
    """Two covers brighter than every band's 98th percentile: a stretch clipped there makes
    them one value; the k-means stretch is not clipped, so they get their own clusters, and
    the model file keeps that stretch for the next scene."""
    first = _bright_blocks(tmp_path / "a.tif", [(30, 40), (180, 200)])
    model = tmp_path / "km.lcmap"
    fitted = MethodSpec("kmeans", classes=3)
    api.segment(first, tmp_path / "a_map.tif", save_model=model, method=fitted)
    labels = read(tmp_path / "a_map.tif")[0]
    ground, dim, bright = labels[120, 120], labels[41, 51], labels[191, 211]
    assert len({ground, dim, bright}) == 3
    assert (labels[31:51, 41:61] == dim).all() and (labels[181:201, 201:221] == bright).all()
    header = read_header(model)
    assert header.norm_clip is False and header.format_version >= 2
    clipped = replace(header.read_spec().norm, clip=True)
    values = np.array([[[3000.0, 5000.0]]] * 3, np.float32)
    assert (clipped.apply(values, np.ones((1, 2), bool)) == 1.0).all()  # what a clip would do
    # The saved model maps the fitting scene as the fitting run did, and a second scene
    # (covers moved, 10 % brighter: other percentiles of its own) with the same stretch.
    api.segment(first, tmp_path / "again.tif", model=model)
    np.testing.assert_array_equal(read(tmp_path / "again.tif")[0], labels)
    second = _bright_blocks(tmp_path / "b.tif", [(200, 10), (10, 150)], gain=1.1)
    api.segment(second, tmp_path / "b_map.tif", model=model)
    other = read(tmp_path / "b_map.tif")[0]
    assert other[211, 21] == dim and other[21, 161] == bright and other[120, 120] == ground
