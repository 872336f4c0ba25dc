"""``lcmap.io.stack``: a raster's bands stacked after a scene's, on its grid, read lazily."""

import numpy as np
import pytest
import rasterio
from _helpers import write_raster
from rasterio.transform import from_origin
from rasterio.windows import Window

from lcmap import api
from lcmap.cli import app
from lcmap.errors import InvalidSceneError, LcmapError, NoNodataWarning
from lcmap.io.scene import open_on_grid, read_window
from lcmap.io.stack import stacked
from lcmap.models import read_header
from lcmap.workflows.specs import MethodSpec, PatchSpec, RunSpec
from tests.cli._cli import one_line_error, runner


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    optical = rng.integers(1, 255, (3, 96, 128)).astype(np.uint8)
    optical[:, :8, :8] = 0  # nodata corner
    scene = write_raster(
        tmp_path / "s2.tif", optical, "EPSG:32633", from_origin(500000, 5000000, 10, 10), nodata=0
    )
    # Radar at another pixel size, covering the scene's left two thirds only.
    radar = rng.normal(-12, 3, (2, 40, 40)).astype(np.float32)
    extra = write_raster(
        tmp_path / "s1.tif", radar, "EPSG:32633", from_origin(500000, 5000000, 20, 20)
    )
    return scene, extra


def test_the_stack_holds_the_scene_then_the_warped_raster(pair):
    scene, extra = pair
    with stacked(scene, [extra]) as path, rasterio.open(path) as src:
        assert (src.count, src.width, src.height) == (5, 128, 96)
        data, valid = read_window(src, Window(0, 0, 128, 96), [1, 2, 3, 4, 5])
    with rasterio.open(scene) as s:
        own = s.read().astype(np.float32)
        with open_on_grid(extra, s, fill=0) as view:
            warped = view.read(out_dtype="float32")
    assert np.array_equal(data[:3], own)
    assert np.allclose(data[3:], warped)
    assert not valid[:8, :8].any() and valid[8:, 8:].all()  # the scene's own mask
    assert np.isfinite(data).all() and (data[3:, :, 90:] == 0).all()  # beyond the radar: 0


def test_the_stack_says_what_its_bands_are(pair):
    from rasterio.enums import ColorInterp

    from lcmap.io.bands import true_colour

    scene, extra = pair
    with rasterio.open(scene, "r+") as dst:  # an RGB file stored blue, green, red
        dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red]
    with rasterio.open(extra, "r+") as dst:
        dst.descriptions = ("VV", "VH")
    with stacked(scene, [extra]) as path, rasterio.open(path) as src:
        assert src.descriptions == (None, None, None, "VV", "VH")
        assert true_colour(src) == ((3, 2, 1), "colour interpretation")
    with rasterio.open(scene, "r+") as dst:  # Sentinel-2 codes instead
        dst.colorinterp = [ColorInterp.undefined] * 3
        dst.descriptions = ("B03", "B04", "B05")
    with rasterio.open(extra, "r+") as dst:
        dst.descriptions = ("B02", "VH")
    with stacked(scene, [extra]) as path, rasterio.open(path) as src:
        assert src.descriptions == ("B03", "B04", "B05", "B02", "VH")
        assert true_colour(src) == ((2, 1, 4), "Sentinel-2/Landsat 8 band codes")


def test_a_model_trained_on_a_stack_refuses_a_scene_without_it(pair, tmp_path):
    scene, extra = pair
    model, out = tmp_path / "m.lcmap", tmp_path / "m.tif"
    result = api.segment(
        scene, out, stack=[extra], save_model=model, method=MethodSpec("kmeans", classes=3)
    )
    assert (result.width, result.height) == (128, 96)
    header = read_header(model)
    assert header.in_channels == 5 and header.extra["stack"][0]["bands"] == 2
    r = runner.invoke(
        app, ["segment", str(scene), "--model", str(model), "-o", str(tmp_path / "x.tif")]
    )
    assert "s1.tif: 2 bands" in one_line_error(r) and "--stack" in r.output
    assert not (tmp_path / "x.tif").exists()
    plain = _plain_model(scene, tmp_path)
    with pytest.raises(InvalidSceneError, match="without stacked rasters"):
        api.segment(scene, tmp_path / "y.tif", model=plain, stack=[extra])
    with rasterio.open(out) as a:
        again = tmp_path / "again.tif"
        api.segment(scene, again, model=model, stack=[extra])
        with rasterio.open(again) as b:
            assert np.array_equal(a.read(1), b.read(1))


def _plain_model(scene, tmp_path):
    path = tmp_path / "plain.lcmap"
    api.train([scene], path, method=MethodSpec("kmeans", classes=3))
    return path


def test_a_stack_goes_with_one_scene(pair, tmp_path):
    scene, extra = pair
    with pytest.raises(LcmapError, match="one scene"):
        api.train([scene, scene], tmp_path / "m.lcmap", method="kmeans", stack=[extra])
    header = api.train(
        [scene], tmp_path / "m.lcmap", stack=[extra], method=MethodSpec("kmeans", classes=3)
    )
    assert header.in_channels == 5 and header.extra["stack"][0]["name"] == "s1.tif"


def test_few_shot_learning_reads_the_stack_the_model_was_trained_with(tmp_path):
    from _cas_data import ORIGIN, TINY_CAS, write_three_class_scene

    from lcmap.workflows.finetune import finetune
    from lcmap.workflows.suggest import suggest_labels

    scene, labels = tmp_path / "a.tif", tmp_path / "a_labels.tif"
    truth = write_three_class_scene(scene, labels, seed=0)
    extra = write_raster(
        tmp_path / "s1.tif",
        (truth[None] * 2.0 - 5.0).astype(np.float32),
        "EPSG:32618",
        from_origin(*ORIGIN, 2.0, 2.0),
    )
    model = tmp_path / "cas.lcmap"
    api.train(
        [scene],
        model,
        stack=[extra],
        method=MethodSpec("cas", classes=3, options=TINY_CAS),
        run=RunSpec(device="cpu"),
    )
    header = finetune(
        model,
        [scene],
        [labels],
        tmp_path / "t.lcmap",
        stack=[extra],
        patches=PatchSpec(count=4, size=32),
        options={"steps": 5},
        run=RunSpec(device="cpu"),
    )
    assert header.in_channels == 4 and header.extra["scenes"] == ["a.tif"]
    assert header.extra["stack"][0]["name"] == "s1.tif"  # the tuned model reads it too
    api.segment(scene, tmp_path / "t.tif", model=tmp_path / "t.lcmap", stack=[extra])
    frame = suggest_labels(
        [scene],
        model,
        None,
        stack=[extra],
        patches=PatchSpec(count=3, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 3 and set(frame["scene"]) == {"a"}
    with pytest.raises(InvalidSceneError, match="plus stacked rasters"):
        finetune(
            model,
            [scene],
            [labels],
            tmp_path / "u.lcmap",
            patches=PatchSpec(size=32),
            run=RunSpec(device="cpu"),
        )


def test_a_stacked_scene_without_nodata_is_warned_about_by_its_own_name(pair, tmp_path):
    scene, extra = pair
    with rasterio.open(scene) as src:
        profile, data = src.profile, src.read()
    profile.pop("nodata")
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
    with pytest.warns(NoNodataWarning, match="bare.tif declares no nodata"):
        api.segment(bare, tmp_path / "b.tif", stack=[extra], method=MethodSpec("kmeans", classes=3))
