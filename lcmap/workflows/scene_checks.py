"""Checks of a scene against the method that maps it, before any work: the halo its tiles
need, whether one band of tile rows fits in memory, whether a ViT's patch is too coarse."""

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from lcmap.errors import InvalidSceneError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from lcmap.methods.base import Segmenter

log = logging.getLogger(__name__)


def tile_halo(seg: "Segmenter", halo: int | None) -> int:
    """The halo to plan with: the method's, or ``halo`` when given.

    The halo is rounded up to the method's tile multiple (a pooling grid or window stride
    the tiles must share with the scene); a windowed method needs at least its own halo, or
    the windows over a core pixel would depend on the tile. A ``halo`` raised for either
    reason is logged as a warning.
    """
    if halo is None:
        return seg.halo
    multiple = seg.tile_multiple
    needed = -(-halo // multiple) * multiple
    if seg.window is not None:
        needed = max(needed, seg.window.halo)
    if needed != halo:
        windows = seg.window
        why = f" and its {windows.size} px windows need {windows.halo} px" if windows else ""
        log.warning(
            "halo %d px raised to %d px: this method's tiles share a %d px grid with the scene%s.",
            halo,
            needed,
            multiple,
            why,
        )
    return needed


def check_row_memory(src: "DatasetReader", tile: int) -> None:
    """Refuse, before any work, a scene so wide that one band of tile rows (what mapping holds
    at a time) cannot fit in this machine's memory.

    Raises:
        InvalidSceneError: naming the width, the memory it needs and the memory there is.
    """
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    # The bands read as float32 and the labels of one band of tile rows.
    need = src.width * tile * (4 * src.count + 2)
    if need > ram:
        raise InvalidSceneError(
            f"{Path(src.name).name} is {src.width} px wide: one band of {tile}-px tile rows "
            f"needs {need / 2**30:.0f} GB, more than this machine's {ram / 2**30:.0f} GB; cut "
            "the scene into narrower pieces (gdal_translate -srcwin) and map them as several "
            "scenes."
        )


#: Pixels this large or larger on the ground are mapped with ``kmeans`` by default: from there
#: on it scored as well as ``primaps`` or better on every development set, at a fraction of
#: the time (a ViT patch of 14 pixels is then 70 m or more of ground). Measured on the pixel
#: sizes the development sets have; ``benchmarks/README.md``, "The default chosen from the
#: scene".
KMEANS_FROM_M = 5.0

#: A product's pixel size on a map projection varies on the ground with the projection's scale
#: (a 5 m UTM grid is 4.995-5.002 m across a zone): sizes within this fraction below
#: :data:`KMEANS_FROM_M` count as reaching it.
PROJECTION_SLACK = 0.01


def spectral_suffices(pixel_size: float | None) -> TypeGuard[float]:
    """Whether pixels of ``pixel_size`` metres on the ground (None: unknown) are coarse enough
    that the spectral k-means maps as well as the ViT methods (:data:`KMEANS_FROM_M`)."""
    return pixel_size is not None and pixel_size >= KMEANS_FROM_M * (1 - PROJECTION_SLACK)


def warn_coarse_patches(seg: "Segmenter", src: "DatasetReader") -> None:
    """Say in one line when a ViT method maps a scene whose pixels are coarse enough for the
    spectral k-means (:func:`spectral_suffices`): asked for by name, as the default would not
    have chosen it."""
    from lcmap.io.ground import pixel_size_m

    vit = getattr(seg, "vit", None)
    pixel = pixel_size_m(src) if vit is not None else None
    if vit is None or not spectral_suffices(pixel):
        return
    log.warning(
        "%s sees this scene in %d px patches, %.0f m of ground at %.3g m pixels: from %g m "
        "pixels kmeans (the default there) maps as well and keeps thin features (rivers, roads).",
        seg.info.name,
        vit.patch_size,
        float(vit.patch_size) * pixel,
        pixel,
        KMEANS_FROM_M,
    )
