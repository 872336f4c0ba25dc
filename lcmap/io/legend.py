"""A map's legend: a colour per class (familiar ones for common land-cover names) and the
category names and raster attribute table that GDAL and QGIS read from ``MAP.tif.aux.xml``."""

from collections.abc import Sequence

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


def default_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """One colour a class, cycling :data:`PALETTE`."""
    return [PALETTE[i % len(PALETTE)] for i in range(num_classes)]


#: Colours for common land-cover names, so a named map looks familiar in QGIS.
_NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "water": (31, 120, 220),
    "building": (220, 40, 40),
    "buildings": (220, 40, 40),
    "urban": (200, 60, 60),
    "built": (200, 60, 60),
    "developed": (200, 60, 60),
    "road": (130, 130, 130),
    "roads": (130, 130, 130),
    "vegetation": (40, 160, 60),
    "tree": (20, 110, 40),
    "trees": (20, 110, 40),
    "forest": (20, 110, 40),
    "grass": (140, 200, 90),
    "crop": (230, 200, 80),
    "cropland": (230, 200, 80),
    "land": (210, 180, 140),
    "bare": (210, 180, 140),
    "barren": (210, 180, 140),
    "soil": (180, 140, 100),
}


def named_colours(names: Sequence[str]) -> list[tuple[int, int, int]]:
    """A colour per class: a familiar one for common land-cover names, else the palette's."""
    palette = default_colours(len(names))
    return [_NAMED_COLOURS.get(n.strip().lower(), palette[i]) for i, n in enumerate(names)]
