"""A map's legend: its class names (the ``CLASS_NAMES`` tag lcmap writes, or a legend file), a
colour per class (familiar ones for common land-cover names), the category names and raster
attribute table that GDAL and QGIS read from ``MAP.tif.aux.xml``, and the QGIS style (``MAP.qml``)
that QGIS opens the map with."""

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader

from lcmap.errors import InputNotFoundError, InvalidSceneError

log = logging.getLogger(__name__)

# A qualitative palette (20 distinct colours, after ColorBrewer/Tableau), cycled beyond 20.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


def category_xml(names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> str:
    """A GDAL PAM document naming the classes of band 1, read by GDAL and QGIS.

    Category names (``gdalinfo`` lists them under "Categories") and a thematic raster
    attribute table (value, class, red, green, blue) for tools that read RATs. The GeoTIFF
    driver keeps both in this ``.aux.xml`` file, not inside the TIFF.
    """
    from xml.sax.saxutils import escape

    fields = [("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8)]
    lines = ["<PAMDataset>", '  <PAMRasterBand band="1">', "    <CategoryNames>"]
    lines += [f"      <Category>{escape(n)}</Category>" for n in names]
    lines += ["    </CategoryNames>", '    <GDALRasterAttributeTable tableType="thematic">']
    for i, (name, kind, usage) in enumerate(fields):
        lines.append(
            f'      <FieldDefn index="{i}"><Name>{name}</Name><Type>{kind}</Type>'
            f"<Usage>{usage}</Usage></FieldDefn>"
        )
    for i, (name, (r, g, b)) in enumerate(zip(names, colours, strict=True)):
        cells = "".join(f"<F>{v}</F>" for v in (i, escape(name), r, g, b))
        lines.append(f'      <Row index="{i}">{cells}</Row>')
    lines += ["    </GDALRasterAttributeTable>", "  </PAMRasterBand>", "</PAMDataset>", ""]
    return "\n".join(lines)


def style_qml(names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> str:
    """A QGIS layer style drawing band 1 with a paletted renderer of exactly these classes.

    QGIS applies ``MAP.qml`` as the default style of ``MAP.tif`` when it opens it (its own
    "Create default paletted raster renderer" tool writes the same file), so the layer panel
    lists the K named classes. Without it QGIS would build its legend from the TIFF palette,
    which a GeoTIFF always stores with 256 entries (the unused ones black).
    """
    from xml.sax.saxutils import quoteattr

    lines = [
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>",
        '<qgis version="3.22.0" styleCategories="Symbology">',
        "  <pipe>",
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">',
        "      <rasterTransparency/>",
        "      <colorPalette>",
    ]
    for i, (name, (r, g, b)) in enumerate(zip(names, colours, strict=True)):
        lines.append(
            f'        <paletteEntry value="{i}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
            f"label={quoteattr(name)}/>"
        )
    lines += ["      </colorPalette>", "    </rasterrenderer>", "  </pipe>", "</qgis>", ""]
    return "\n".join(lines)


def default_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """One colour a class, cycling :data:`PALETTE`."""
    return [PALETTE[i % len(PALETTE)] for i in range(num_classes)]


#: Colours for common land-cover names (those of the NLCD, CORINE and ESA WorldCover legends,
#: and of the usual training sets), so a named map looks familiar in QGIS. Keys are lower case
#: with ``_`` and ``-`` read as spaces.
_NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    **dict.fromkeys(["water", "open water", "river", "lake", "sea"], (31, 120, 220)),
    **dict.fromkeys(["building", "buildings", "roof", "roofs"], (220, 40, 40)),
    **dict.fromkeys(
        ["urban", "built", "built up", "developed", "settlement", "impervious"], (200, 60, 60)
    ),
    **dict.fromkeys(["road", "roads", "pavement"], (130, 130, 130)),
    "vegetation": (40, 160, 60),
    **dict.fromkeys(["tree", "trees", "forest", "woodland", "tree cover"], (20, 110, 40)),
    **dict.fromkeys(["grass", "grassland", "herbaceous", "meadow", "pasture"], (150, 205, 90)),
    **dict.fromkeys(["shrub", "shrubs", "shrubland", "scrub"], (160, 150, 60)),
    **dict.fromkeys(
        ["crop", "crops", "cropland", "farmland", "agriculture", "cultivated"], (230, 200, 80)
    ),
    **dict.fromkeys(["wetland", "wetlands", "marsh"], (110, 180, 200)),
    **dict.fromkeys(["land", "bare", "barren", "bare soil", "sand"], (210, 180, 140)),
    "soil": (180, 140, 100),
    **dict.fromkeys(["snow", "ice", "snow and ice", "cloud", "clouds"], (240, 240, 245)),
    **dict.fromkeys(["shadow", "shadows"], (50, 50, 60)),
}


def name_key(name: str) -> str:
    """A class name as names are compared: lower case, ``_`` and ``-`` read as spaces, runs of
    spaces as one ("Built_up" and "built-up" are one class)."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def named_colours(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """A colour per class: a familiar one for common land-cover names, else the palette's."""
    palette = default_colours(len(names))
    return [_NAMED_COLOURS.get(name_key(n), palette[i]) for i, n in enumerate(names)]


#: Dataset tag in which lcmap's label writer stores the class names (a JSON list, label 0 first).
CLASS_NAMES_TAG = "CLASS_NAMES"


def read_legend(path: str | Path) -> dict[int, str]:
    """Read class names from a JSON object ``{"0": "water"}`` (or list) or a CSV ``id,name``.

    A CSV header row (any first row whose id is not a number) is skipped.

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidSceneError: it is neither form.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Legend {path} not found; check the path.")
    text = path.read_text(encoding="utf-8-sig")
    expected = 'expected JSON like {"0": "water", "1": "forest"} or CSV rows like "0,water"'
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        from_json = json_class_names(text)
        if from_json is not None:
            return from_json
        raise InvalidSceneError(f"Legend {path} is not a JSON class-name table; {expected}.")
    names: dict[int, str] = {}
    for i, row in enumerate(csv.reader(text.splitlines())):
        if not row or not "".join(row).strip():
            continue
        try:
            if len(row) < 2:
                raise ValueError(row)
            names[int(row[0].strip())] = row[1].strip()
        except ValueError:
            if i == 0:  # a header row such as "id,name"
                continue
            raise InvalidSceneError(
                f"Legend {path} line {i + 1} reads {','.join(row)!r}; {expected}."
            ) from None
    if not names:
        raise InvalidSceneError(f"Legend {path} names no class; {expected}.")
    return names


def json_class_names(text: str) -> dict[int, str] | None:
    """Class names from a JSON list (``["water", ...]``) or object (``{"0": "water"}``)."""
    try:
        data = json.loads(text)
        if isinstance(data, list):
            return {i: str(n) for i, n in enumerate(data)}
        if isinstance(data, dict):
            return {int(k): str(v) for k, v in data.items()}
    except (ValueError, TypeError):
        pass
    return None


def tagged_class_names(path: str | Path) -> dict[int, str] | None:
    """The class names a label raster's ``CLASS_NAMES`` tag gives (as lcmap writes it), by id;
    None when it has none (or the raster cannot be read)."""
    try:
        with rasterio.open(path) as src:
            return raster_class_names(src)
    except RasterioError:
        return None


def raster_class_names(src: DatasetReader) -> dict[int, str] | None:
    raw = src.tags().get(CLASS_NAMES_TAG)
    if not raw:
        return None
    names = json_class_names(raw)
    if names is not None:
        return names
    log.warning("Ignoring the unreadable %s tag of %s", CLASS_NAMES_TAG, src.name)
    return None
