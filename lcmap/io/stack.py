"""Extra co-registered rasters stacked after a scene's bands (``--stack s1.tif``).

A Sentinel-2 scene and a Sentinel-1 raster of the same ground map as one input: the scene's
bands, then each extra raster's bands reprojected onto the scene's grid. :func:`stacked`
writes two small GDAL VRTs and yields the path of the stacked one:

- per extra raster, the XML of a rasterio ``WarpedVRT`` onto the scene's grid
  (:func:`lcmap.io.scene.open_on_grid`: nearest for classes, bilinear for measurements); GDAL
  warps the windows that are read, when they are read, never the whole raster;
- one VRT with the scene's bands and the warped bands, on the scene's grid, whose mask is the
  scene's own: a pixel is data where the scene has data. Where an extra raster does not reach,
  its bands read 0 (a warped float raster's NaN would poison the networks).

Everything that reads a scene by its path (the engine's reader thread, the parts of a Dask run)
reads the stack the same way. A model trained on a stack records each input's band layout
(:func:`layout`) and refuses a scene given without it (:func:`check_layout`).
"""

import contextlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lcmap.errors import InvalidSceneError, LcmapError
from lcmap.io.scene import is_virtual, open_on_grid, open_scene

_GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
    "int64": "Int64",
    "uint64": "UInt64",
}


_TYPE = re.compile(r'dataType="(\w+)"')


def _source(path: str | Path) -> str:
    """An absolute path for a local file (the VRTs live elsewhere), else the GDAL path."""
    return str(path) if is_virtual(path) else str(Path(path).resolve())


def layout(extras: Sequence[str | Path]) -> list[dict[str, Any]]:
    """What a model records of its stacked inputs: name, band count and data types."""
    found = []
    for path in extras:
        with open_scene(path) as src:
            found.append(
                {"name": Path(str(path)).name, "bands": src.count, "dtypes": list(src.dtypes)}
            )
    return found


def check_layout(recorded: list[dict[str, Any]] | None, extras: Sequence[str | Path]) -> None:
    """Refuse extras that do not match a model's recorded stack (or a stack it has none of).

    Raises:
        InvalidSceneError: naming what the model expects.
    """
    recorded = recorded or []
    given = layout(extras)
    want = [r["bands"] for r in recorded]
    if want == [g["bands"] for g in given]:
        return
    if not recorded:
        raise InvalidSceneError(
            f"this model was trained without stacked rasters; drop the stack "
            f"({', '.join(g['name'] for g in given)})."
        )
    expected = "; ".join(f"{r['name']}: {r['bands']} bands" for r in recorded)
    got = "; ".join(f"{g['name']}: {g['bands']} bands" for g in given) or "none"
    raise InvalidSceneError(
        f"this model reads its scene's bands plus stacked rasters ({expected}); given: {got}. "
        "Give the same stack (stack=...)."
    )


#: Colour interpretations a stacked band keeps: those that say which band is red, green or
#: blue (:func:`lcmap.io.bands.true_colour`); an alpha or palette band means nothing there.
_COLOURS = {"red": "Red", "green": "Green", "blue": "Blue"}


def _band_xml(
    band: int,
    dtype: str,
    source: str,
    source_band: int,
    nodata: Any,
    named: tuple[str | None, str] = (None, ""),
) -> str:
    """One VRT band; ``named``: the source band's description and colour interpretation, kept
    so that what a file says of its bands (Sentinel-2 codes, red, green, blue) holds for the
    stack too."""
    description, interp = named
    text = f"<Description>{escape(description)}</Description>" if description else ""
    text += f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    text += f"<ColorInterp>{_COLOURS[interp]}</ColorInterp>" if interp in _COLOURS else ""
    return (
        f'<VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{band}">{text}'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>'
        f"<SourceBand>{source_band}</SourceBand></SimpleSource></VRTRasterBand>"
    )


def _named(src: Any) -> list[tuple[str | None, str]]:
    """Each band's description and colour interpretation name."""
    return list(zip(src.descriptions, (c.name for c in src.colorinterp), strict=True))


@contextlib.contextmanager
def stacked(scene: str | Path, extras: Sequence[str | Path]) -> Iterator[str]:
    """The path of a VRT: ``scene``'s bands, then each of ``extras`` warped onto its grid.

    Removed on exit. Raises what :func:`lcmap.io.scene.open_on_grid` raises (an extra raster
    that cannot be opened, or a scene or raster without a CRS).
    """
    with tempfile.TemporaryDirectory(prefix="lcmap-stack-") as tmp, open_scene(scene) as src:
        names = _named(src)
        bands = [
            _band_xml(b, src.dtypes[b - 1], _source(scene), b, src.nodatavals[b - 1], names[b - 1])
            for b in range(1, src.count + 1)
        ]
        for i, extra in enumerate(extras):
            with open_scene(extra) as own:
                extra_names = _named(own)
            with open_on_grid(_source(extra), src, fill=0) as view:
                xml = view.tags(ns="xml:VRT").get("xml:VRT")
                if not xml:
                    raise InvalidSceneError(f"GDAL gave no warped view of {Path(extra).name}.")
                warped = Path(tmp) / f"extra{i}.vrt"
                warped.write_text(xml)
                for b, dtype in enumerate(view.dtypes, start=1):
                    n = len(bands) + 1
                    bands.append(_band_xml(n, dtype, str(warped), b, None, extra_names[b - 1]))
        # rasterio reads one data type per dataset: mixed inputs become float32 (float64 kept).
        types = set(_TYPE.findall("".join(bands)))
        if len(types) > 1:
            common = "Float64" if "Float64" in types else "Float32"
            bands = [_TYPE.sub(f'dataType="{common}"', b, count=1) for b in bands]
        geo = ", ".join(repr(v) for v in src.transform.to_gdal())
        srs = f"<SRS>{escape(src.crs.to_wkt())}</SRS>" if src.crs else ""
        mask = (
            '<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource><SourceFilename '
            f'relativeToVRT="0">{escape(_source(scene))}</SourceFilename>'
            "<SourceBand>mask,1</SourceBand></SimpleSource></VRTRasterBand></MaskBand>"
        )
        path = Path(tmp) / f"{Path(str(scene)).stem}+stack.vrt"
        path.write_text(
            f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">{srs}'
            f"<GeoTransform>{geo}</GeoTransform>{''.join(bands)}{mask}</VRTDataset>"
        )
        yield str(path)


@contextlib.contextmanager
def with_stack(
    scenes: Sequence[str | Path],
    stack: Sequence[str | Path] | None,
    recorded: list[dict[str, Any]] | None,
) -> Iterator[list[str | Path]]:
    """``scenes`` as a model with the ``recorded`` stack reads them: unchanged without a
    stack, else the one scene's :func:`stacked` VRT.

    Raises:
        LcmapError: a stack with several scenes; InvalidSceneError: a stack (or none) that
            does not match what the model was trained with.
    """
    check_layout(recorded, stack or [])
    if not stack:
        yield list(scenes)
        return
    if len(scenes) != 1:
        raise LcmapError(f"a stack goes with one scene; {len(scenes)} were given.")
    with stacked(scenes[0], stack) as path:
        yield [path]


__all__ = ["check_layout", "layout", "stacked", "with_stack"]
