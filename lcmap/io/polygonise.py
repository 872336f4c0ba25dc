"""A label raster to polygons in pixel coordinates, window by window, in bounded memory.

Each square window is (optionally) sieved with a margin, then polygonised with
:func:`rasterio.features.shapes` (4-connectivity, nodata left out). Polygons are built in
*pixel* coordinates, so every vertex is an exact integer and a polygon cut at a window edge
lines up exactly with its continuation in the next window. A polygon that touches no internal
window edge (a seam) is a whole region already; those touching a seam are kept aside and, per
class at the end, grouped by touching, merged and split into their connected parts
(:func:`lcmap.io.geometry.dissolve`): one polygon per region, corner-touching parts apart as
4-connectivity wants. :mod:`lcmap.io.vector` takes it from there.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from rasterio import features
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import Affine
from rasterio.windows import Window
from shapely.geometry import shape

from lcmap.errors import InvalidSceneError
from lcmap.io.geometry import dissolve

#: Called with (windows done, windows in all).
Progress = Callable[[int, int], None]

# Integer types rasterio's shapes() and sieve() take as they are; others are cast to int32.
_NATIVE_DTYPES = {"uint8", "uint16", "int16", "int32"}


def square_windows(width: int, height: int, size: int) -> Iterator[Window]:
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def read_labels(src: DatasetReader, window: Window) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """Labels and validity (False at nodata or masked pixels) over ``window``; a read error
    is said as a truncated or corrupt file."""
    try:
        data = src.read(1, window=window)
        flags = src.mask_flag_enums[0]
        if MaskFlags.all_valid in flags:
            valid = np.ones(data.shape, bool)
        elif MaskFlags.nodata in flags and src.nodata is not None:
            valid = data != src.nodata
        else:
            valid = src.read_masks(1, window=window) > 0
    except RasterioError as exc:
        raise InvalidSceneError(
            f"{Path(src.name).name} could not be read ({str(exc).splitlines()[0]}); the file "
            "is truncated or corrupt: re-create or re-download it."
        ) from exc
    if data.dtype.name not in _NATIVE_DTYPES:
        data = as_int32(data, valid, Path(src.name).name)
    return data, valid


def as_int32(data: NDArray[Any], valid: NDArray[np.bool_], name: str) -> NDArray[np.int32]:
    # rasterio's shapes()/sieve() take only (u)int8/16 and int32 labels.
    if valid.any():
        low, high = data[valid].min(), data[valid].max()
        info = np.iinfo(np.int32)
        if low < info.min or high > info.max:
            raise InvalidSceneError(
                f"{name} has labels from {low} to {high}; expected labels that fit in int32; "
                "renumber the classes first."
            )
    return np.where(valid, data, 0).astype(np.int32)


def sieve(
    data: NDArray[Any],
    valid: NDArray[np.bool_],
    size: int,
    judged_whole: bool,
    open_edges: tuple[bool, bool, bool, bool],
) -> NDArray[Any]:
    """Merge regions smaller than ``size`` pixels into their largest neighbour.

    With ``judged_whole`` the read margin is at least ``size``, so any small region reaching
    the window's core lies entirely inside the read window and is judged on its full size.
    Otherwise (margin capped at the window size), a region that touches an open edge of the read
    window may be a piece of a larger one: changes connected to those edges are undone, and the
    polygon-level area filter deals with what remains.
    """
    # GDAL's sieve takes sizes below the window's area; a larger one sieves it all the same.
    size = min(size, data.size - 1)
    if size <= 1:
        return data
    sieved: NDArray[Any] = features.sieve(data, size, mask=valid, connectivity=4)
    if judged_whole:
        return sieved
    changed = sieved != data
    if not changed.any():
        return sieved
    from scipy import ndimage

    parts, _ = ndimage.label(changed)
    top, bottom, left, right = open_edges
    edge = [parts[0] if top else None, parts[-1] if bottom else None]
    edge += [parts[:, 0] if left else None, parts[:, -1] if right else None]
    touching = np.unique(np.concatenate([e for e in edge if e is not None] or [np.zeros(0, int)]))
    touching = touching[touching > 0]
    if len(touching):
        undo = np.isin(parts, touching)
        sieved[undo] = data[undo]
    return sieved


def polygonise(
    src: DatasetReader,
    window_size: int,
    sieve_size: int,
    wanted: set[int] | None,
    progress: Progress | None,
) -> tuple[NDArray[np.int64], NDArray[np.object_], int]:
    """Polygons in pixel coordinates, one per connected region, with their class ids."""
    width, height = src.width, src.height
    windows = list(square_windows(width, height, window_size))
    margin = min(sieve_size, window_size) if sieve_size > 1 else 0
    done_cls: list[NDArray[np.int64]] = []
    done_geoms: list[NDArray[np.object_]] = []
    seams: dict[int, list[shapely.Geometry]] = {}
    for i, win in enumerate(windows):
        c0, r0 = int(win.col_off), int(win.row_off)
        c1, r1 = c0 + int(win.width), r0 + int(win.height)
        # Read with a margin for the sieve, clipped to the raster.
        rc0, rr0 = max(0, c0 - margin), max(0, r0 - margin)
        rc1, rr1 = min(width, c1 + margin), min(height, r1 + margin)
        data, valid = read_labels(src, Window(rc0, rr0, rc1 - rc0, rr1 - rr0))
        core = (slice(r0 - rr0, r1 - rr0), slice(c0 - rc0, c1 - rc0))
        if valid[core].any():
            if sieve_size > 1:
                edges = (rr0 > 0, rr1 < height, rc0 > 0, rc1 < width)
                data = sieve(data, valid, sieve_size, margin >= sieve_size, edges)
            data, valid = data[core], valid[core]
            if wanted is not None:
                valid &= np.isin(data, list(wanted))
            if valid.any():
                shapes = features.shapes(
                    data, mask=valid, connectivity=4, transform=Affine.translation(c0, r0)
                )
                geoms_list, values = [], []
                for geom, value in shapes:
                    geoms_list.append(shape(geom))
                    values.append(int(value))
                geoms = np.array(geoms_list, dtype=object)
                cls = np.array(values, dtype=np.int64)
                minx, miny, maxx, maxy = shapely.bounds(geoms).T
                on_seam = (
                    ((minx == c0) & (c0 > 0))
                    | ((maxx == c1) & (c1 < width))
                    | ((miny == r0) & (r0 > 0))
                    | ((maxy == r1) & (r1 < height))
                )
                done_cls.append(cls[~on_seam])
                done_geoms.append(geoms[~on_seam])
                for value, geom in zip(cls[on_seam], geoms[on_seam], strict=True):
                    seams.setdefault(int(value), []).append(geom)
        if progress is not None:
            progress(i + 1, len(windows) + 1)

    for value in sorted(seams):
        parts = dissolve(np.array(seams.pop(value), dtype=object))
        done_cls.append(np.full(len(parts), value, dtype=np.int64))
        done_geoms.append(parts)
    if not done_geoms:
        return np.zeros(0, np.int64), np.zeros(0, object), len(windows)
    cls = np.concatenate(done_cls)
    geoms = np.concatenate(done_geoms)
    # A stable order whatever the window size: by class, then top-left corner.
    minx, miny, _, _ = shapely.bounds(geoms).T
    order = np.lexsort((minx, miny, cls))
    return cls[order], geoms[order], len(windows)
