"""The mosaic of several label maps: one VRT over them that GIS software opens as one map.

``lcmap segment A.tif B.tif -o maps/`` and ``lcmap classes maps/*.tif -o named/`` write
``OUTDIR/mosaic.vrt`` over the maps they made (later maps on top where they overlap), with the
maps' colour table and class names, and ``OUTDIR/mosaic.qml``, the default style QGIS applies
to it: its K classes, named, in the maps' colours (as each map's own ``.qml``).
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import rasterio

from lcmap.io.legend import CLASS_NAMES_TAG, json_class_names, style_qml
from lcmap.io.staging import check_output, publish, temp_path

log = logging.getLogger(__name__)

#: The mosaic's file name in an output folder.
MOSAIC = "mosaic.vrt"


def check_mosaic_outputs(outdir: Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> None:
    """Refuse, before any work, a mosaic or its style that exist (unless ``overwrite``), or
    that would replace one of the run's ``inputs`` (even with it)."""
    check_output(outdir / MOSAIC, overwrite, also=[mosaic_style(outdir / MOSAIC)], inputs=inputs)


def write_mosaic(maps: Sequence[Path], path: Path) -> Path | None:
    """A VRT over ``maps`` (later maps on top where they overlap, nodata see-through), with
    the first map's colour table; None (and a log line) when the maps' CRSs differ.

    The mosaic's pixel size is the finest of the maps'; its extent is their union.
    """
    infos = []
    for m in maps:
        with rasterio.open(m) as src:
            infos.append(
                {
                    "path": m,
                    "crs": src.crs,
                    "bounds": src.bounds,
                    "res": src.res,
                    "size": (src.width, src.height),
                    "nodata": src.nodata,
                    "colormap": src.colormap(1),
                    "dtype": src.dtypes[0],
                    "names": src.tags().get(CLASS_NAMES_TAG),
                }
            )
    crss = {str(i["crs"]) for i in infos}
    if len(crss) > 1:
        log.info("no %s: the maps are in %d CRSs", path.name, len(crss))
        return None
    first = infos[0]
    crs, nodata, colormap, names = first["crs"], first["nodata"], first["colormap"], first["names"]
    xres = min(i["res"][0] for i in infos)
    yres = min(i["res"][1] for i in infos)
    left = min(i["bounds"].left for i in infos)
    top = max(i["bounds"].top for i in infos)
    width = round((max(i["bounds"].right for i in infos) - left) / xres)
    height = round((top - min(i["bounds"].bottom for i in infos)) / yres)
    gdal_type = {"uint8": "Byte", "uint16": "UInt16"}[first["dtype"]]
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs is not None:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{left!r},{xres!r},0.0,{top!r},0.0,{-yres!r}</GeoTransform>")
    if names:
        lines.append(f'  <Metadata><MDI key="{CLASS_NAMES_TAG}">{escape(names)}</MDI></Metadata>')
    lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="1">')
    classes = _palette(lines, nodata, colormap, names)
    for info in infos:
        bounds, res, (w, h) = info["bounds"], info["res"], info["size"]
        x = (bounds.left - left) / xres
        y = (top - bounds.top) / yres
        dst = (
            f'xOff="{x:.6f}" yOff="{y:.6f}" xSize="{w * res[0] / xres:.6f}" '
            f'ySize="{h * res[1] / yres:.6f}"'
        )
        lines += [
            "    <ComplexSource>",
            f'      <SourceFilename relativeToVRT="1">{escape(info["path"].name)}</SourceFilename>',
            "      <SourceBand>1</SourceBand>",
            f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
            f"      <DstRect {dst}/>",
            f"      <NODATA>{nodata:g}</NODATA>",
            "    </ComplexSource>",
        ]
    lines += ["  </VRTRasterBand>", "</VRTDataset>", ""]
    tmp = temp_path(path, ".vrt")
    tmp.write_text("\n".join(lines))
    publish(tmp, path)
    if classes:  # QGIS's default style of the mosaic: its K named classes, as for each map
        style = mosaic_style(path)
        tmp = temp_path(style, ".qml")
        tmp.write_text(style_qml([n for n, _ in classes], [c for _, c in classes]))
        publish(tmp, style)
    log.info("wrote %s over %d maps", path, len(maps))
    return path


def mosaic_style(path: Path) -> Path:
    """The QGIS style beside a mosaic: ``mosaic.vrt`` -> ``mosaic.qml``."""
    return path.with_suffix(".qml")


def _palette(
    lines: list[str], nodata: float, colormap: dict[int, Any], names: str | None
) -> list[tuple[str, tuple[int, int, int]]]:
    """Append the mosaic band's nodata, colour table and class names (GDAL's
    ``CategoryNames``, which QGIS and ``gdalinfo`` read) to ``lines``; return each class's
    name and colour."""
    lines += [
        f"    <NoDataValue>{nodata:g}</NoDataValue>",
        "    <ColorInterp>Palette</ColorInterp>",
    ]
    found = (json_class_names(names) if names else None) or {}
    classes: list[tuple[str, tuple[int, int, int]]] = []
    for i in range(max(found) + 1 if found else 0):  # by value: category i is label i
        r, g, b = colormap.get(i, (0, 0, 0, 255))[:3]
        classes.append((found.get(i, f"class {i}"), (r, g, b)))
    if classes:
        lines.append("    <CategoryNames>")
        lines += [f"      <Category>{escape(n)}</Category>" for n, _ in classes]
        lines.append("    </CategoryNames>")
    lines.append("    <ColorTable>")
    for value in range(max(colormap) + 1 if colormap else 1):
        r, g, b, a = colormap.get(value, (0, 0, 0, 0))
        lines.append(f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>')
    lines.append("    </ColorTable>")
    return classes
