"""``lcmap.workflows.fitting``: which method, which bands, and what a saved model may be given."""

import logging
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from lcmap.errors import InvalidModelError, InvalidOptionError, LcmapError, ModelMismatchWarning
from lcmap.models import ModelHeader
from lcmap.workflows.fitting import _model_bands, build_method, choose_method, method_bands


def _method(rgb_first: bool) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(name="vit", rgb_first=rgb_first))


@pytest.fixture
def landsat():
    """A Landsat 8 stack in band order with its band codes: blue, green, red, NIR, SWIR 1."""
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 5, "dtype": "uint16"}
    profile |= {"crs": "EPSG:32612", "transform": from_origin(300000, 4100000, 30, 30)}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(np.ones((5, 8, 8), "uint16"))
            for i, code in enumerate(["B2", "B3", "B4", "B5", "B6"], start=1):
                dst.set_band_description(i, code)
        with mem.open() as src:
            yield src


def test_a_network_that_reads_rgb_gets_the_true_colour_bands_first(landsat, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lcmap.workflows.fitting"):
        assert method_bands(landsat, None, _method(rgb_first=True)) == [3, 2, 1, 4, 5]
    assert "red, green and blue first" in caplog.text and "-b" in caplog.text
    assert method_bands(landsat, None, _method(rgb_first=False)) == [1, 2, 3, 4, 5]
    assert method_bands(landsat, [4, 3, 2], _method(rgb_first=True)) == [4, 3, 2]  # -b rules


def _header(bands: list[int]) -> ModelHeader:
    two = {"norm_low": [0.0, 0.0], "norm_high": [1.0, 1.0], "colours": [[0, 0, 0], [9, 9, 9]]}
    return ModelHeader("kmeans", {}, 2, 2, bands, class_names=["a", "b"], **two)


def test_a_saved_model_reads_its_own_bands_or_says_why_not(landsat) -> None:
    header = _header([4, 5])
    with pytest.warns(ModelMismatchWarning, match="another sensor or band order"):
        assert _model_bands(landsat, header, None, 0) == [4, 5]  # fitted on values 0..1
    with pytest.raises(InvalidOptionError, match="bands cannot be chosen again"):
        _model_bands(landsat, header, [1, 2], 0)
    wide = _header([5, 7])
    with pytest.raises(InvalidModelError, match="has 5 bands"):
        _model_bands(landsat, wide, None, 0)


def test_a_method_is_chosen_as_asked_or_by_default(monkeypatch) -> None:
    from lcmap.workflows import fitting

    assert choose_method("stego", None, None) == ("stego", "")
    monkeypatch.setattr(fitting, "default_method", lambda options, *facts: ("kmeans", "no weights"))
    assert choose_method(None, None, None) == ("kmeans", "no weights")
    assert choose_method("auto", None, None) == ("kmeans", "no weights")


@pytest.mark.parametrize(
    ("crs", "pixel", "weights", "chosen", "why"),
    [
        ("EPSG:32618", 10.0, True, "kmeans", "10 m pixels; from 5 m the spectral k-means"),
        # 300 km off the central meridian a 5 m UTM pixel is 4.997 m of ground: still 5 m.
        ("EPSG:32618", 5.0, True, "kmeans", "5 m pixels; from 5 m"),
        ("EPSG:4326", 0.0001, True, "kmeans", "11.1 m pixels"),  # degrees, on the ground
        ("EPSG:3857", 6.0, True, "primaps", "3.86 m pixels"),  # Web Mercator at 50 N
        ("EPSG:32618", 0.5, True, "primaps", "0.5 m pixels; vit_small_patch14_dinov2"),
        ("EPSG:32618", 4.0, False, "kmeans", "4 m pixels; no vit_small_patch14_dinov2"),
        (None, None, True, "primaps", "pixel size unknown (no georeferencing), chosen as for"),
    ],
)
def test_the_default_follows_the_pixel_size(
    crs, pixel, weights, chosen, why, vit_cache, tmp_path, caplog
) -> None:
    if weights:
        (vit_cache / "vit_small_patch14_dinov2.safetensors").write_bytes(b"x")
    scene = tmp_path / "scene.tif"
    origins = {
        "EPSG:32618": (500_000 - 300_000 * (pixel == 5), 4_000_000),
        "EPSG:3857": (0, 6_446_276),
    }
    transform = from_origin(*origins.get(crs, (10, 20)), pixel, pixel) if pixel else None
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 12, "dtype": "uint16"}
    with warnings.catch_warnings():  # writing a scene without georeferencing warns
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(scene, "w", crs=crs, transform=transform, **profile) as dst:
            dst.write(np.ones((12, 8, 8), "uint16"))
    with caplog.at_level(logging.INFO, logger="lcmap.workflows.fitting"):
        method, reason = choose_method(None, None, None, scene)
    assert method == chosen and why in reason
    assert f"method: {chosen} ({reason})" in caplog.text
    # Weights given ask for the ViT whatever the pixels; a method given is taken as given.
    assert choose_method("auto", None, {"weights": "w.pth"}, scene)[0] == "primaps"
    assert choose_method("stego", None, None, scene) == ("stego", "")


@pytest.mark.parametrize(
    ("names", "chosen"),
    [(["NIR", "Red", "Green"], "kmeans"), (["Red", "Green", "Blue"], "primaps"), (None, "primaps")],
)
def test_a_false_colour_scene_is_mapped_by_kmeans_by_default(
    names, chosen, vit_cache, tmp_path, caplog
) -> None:
    """A 10 cm aerial scene whose bands are named near-infrared, red, green (GDAL still calls
    them red, green, blue, as every 3-band byte GeoTIFF): the ViT would read them as red,
    green, blue; named true colour, or not named, it keeps the ViT."""
    (vit_cache / "vit_small_patch14_dinov2.safetensors").write_bytes(b"x")
    scene = tmp_path / "cir.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 3, "dtype": "uint8"}
    transform = from_origin(500_000, 4_000_000, 0.1, 0.1)
    with rasterio.open(scene, "w", crs="EPSG:32618", transform=transform, **profile) as dst:
        dst.write(np.ones((3, 8, 8), "uint8"))
        for i, name in enumerate(names or [], start=1):
            dst.set_band_description(i, name)
    method, reason = choose_method(None, None, None, scene)
    assert method == chosen
    assert (chosen == "kmeans") == ("bands named NIR, Red, Green, none blue" in reason)
    vit = SimpleNamespace(info=SimpleNamespace(name="vit", rgb_first=True))
    with (
        caplog.at_level(logging.WARNING, logger="lcmap.workflows.fitting"),
        rasterio.open(scene) as src,
    ):
        assert method_bands(src, None, vit) == [1, 2, 3]
    told = "reads bands 1,2,3 as red, green and blue, but the file names them NIR, Red, Green"
    assert (told in caplog.text) == (chosen == "kmeans")


@pytest.mark.parametrize(
    ("options", "message"), [({"smoth": 2}, "smooth"), ({"smooth": -1}, "smooth")]
)
def test_a_method_with_a_wrong_option_is_one_clear_error(options, message) -> None:
    with pytest.raises(LcmapError, match=message):
        build_method("kmeans", 4, options)
