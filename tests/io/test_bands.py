"""``lcmap.io.bands``: the true-colour bands found on Sentinel-2 and Landsat stacks, with and
without band descriptions, and read first by the ViT methods only."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from lcmap.io.bands import display_bands, false_colour, rgb_first, true_colour

S2_L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def fake(descriptions: list[str], interp: list[str] | None = None) -> Any:
    n = len(descriptions)
    names = interp or ["gray"] + ["undefined"] * (n - 1)
    return SimpleNamespace(
        count=n,
        descriptions=tuple(d or None for d in descriptions),
        colorinterp=tuple(ColorInterp[c] for c in names),
    )


@pytest.mark.parametrize(
    ("descriptions", "expected"),
    [
        (S2_L2A, (4, 3, 2)),  # Sentinel-2 L2A by its codes
        (["B2", "B3", "B4", "B5"], (3, 2, 1)),  # Landsat 8 blue, green, red, NIR
        (["blue", "green", "red", "nir"], (3, 2, 1)),
        (["Band 4 (red)", "Band 3 (green)", "Band 2 (blue)"], (1, 2, 3)),
        ([""] * 12, (4, 3, 2)),  # a Sentinel-2 L2A stack without descriptions
        ([""] * 13, (4, 3, 2)),  # L1C
        ([""] * 11, (4, 3, 2)),  # Landsat 8/9
    ],
)
def test_true_colour_bands_are_found(descriptions: list[str], expected: tuple[int, ...]) -> None:
    found = true_colour(fake(descriptions))
    assert found is not None and found[0] == expected


@pytest.mark.parametrize(
    ("descriptions", "shown"),
    [
        (S2_L2A, (4, 3, 2)),
        ([""] * 12, (4, 3, 2)),
        ([""] * 4, (1, 2, 3)),  # RGBN, NAIP's order
        (["B1", "B2", "B3"], (1, 2, 3)),
        ([""] * 2, (1,)),
        ([""], (1,)),
    ],
)
def test_pictures_show_the_true_colour_bands_when_known(
    descriptions: list[str], shown: tuple[int, ...]
) -> None:
    assert display_bands(fake(descriptions)) == shown


@pytest.mark.parametrize(
    "descriptions",
    [
        ["B1", "B2", "B3"],  # an RGB file named by position, or Landsat 4-7: not guessed
        [""] * 4,  # RGBN without descriptions: the file order stands
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"],
    ],
)
def test_nothing_is_guessed_without_evidence(descriptions: list[str]) -> None:
    assert true_colour(fake(descriptions)) is None


@pytest.mark.parametrize(
    ("descriptions", "interp", "named"),
    [
        (["NIR", "Red", "Green"], None, "NIR, Red, Green"),  # colour-infrared aerial
        (["near-infrared", "red", "green", "swir"], None, "near-infrared, red, green, swir"),
        (["", "", ""], ["red", "green", "undefined"], "red, green, ?"),
        (["NIR", "Red", "Green"], ["red", "green", "blue"], "NIR, Red, Green"),  # names win
        (["blue", "green", "red", "nir"], None, None),  # true colour is there
        (["", "", ""], None, None),  # nothing named: nothing said
        (["band 1 reflectance", "band 2 reflectance"], None, None),
    ],
)
def test_false_colour_is_told_by_band_names_without_blue(
    descriptions: list[str], interp: list[str] | None, named: str | None
) -> None:
    assert false_colour(fake(descriptions, interp)) == named


def test_colour_interpretation_wins() -> None:
    src = fake(["", "", "", ""], ["blue", "green", "red", "undefined"])
    assert true_colour(src) == ((3, 2, 1), "colour interpretation")
    assert rgb_first(src, [1, 2, 3, 4]) == ([3, 2, 1, 4], "colour interpretation")
    # Bands chosen without one of the three: left as they are.
    assert rgb_first(src, [1, 2, 4]) == ([1, 2, 4], None)


def _landsat(path: Path) -> Path:
    profile = {
        "driver": "GTiff", "width": 64, "height": 64, "count": 4, "dtype": "uint16",
        "crs": "EPSG:32612", "transform": from_origin(300000, 4200000, 30, 30),
    }  # fmt: skip
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rng.integers(5000, 20000, (4, 64, 64), dtype=np.uint16))
        for i, name in enumerate(["B2", "B3", "B4", "B5"], start=1):
            dst.set_band_description(i, name)
    return path


def test_vit_methods_read_red_green_blue_first_and_say_so(tmp_path: Path) -> None:
    import logging

    from lcmap.methods.dino_kmeans import DinoKMeansSegmenter
    from lcmap.methods.kmeans import KMeansSegmenter
    from lcmap.methods.primaps import PrimapsSegmenter
    from lcmap.methods.stego import StegoSegmenter
    from lcmap.workflows.fitting import method_bands

    assert all(m.info.rgb_first for m in (DinoKMeansSegmenter, PrimapsSegmenter, StegoSegmenter))
    with rasterio.open(_landsat(tmp_path / "l8.tif")) as src:
        vit: Any = SimpleNamespace(info=DinoKMeansSegmenter.info)
        said: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger("lcmap.workflows.fitting")
        # Whatever the CLI tests did to the lcmap loggers' levels and propagation.
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        try:
            assert method_bands(src, None, vit) == [3, 2, 1, 4]
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert any("reads bands 3,2,1,4" in m and "band codes" in m for m in said), said
        assert method_bands(src, [1, 2, 3], vit) == [1, 2, 3]  # -b chooses
        kmeans: Any = SimpleNamespace(info=KMeansSegmenter.info)
        assert method_bands(src, None, kmeans) == [1, 2, 3, 4]  # order means nothing there
