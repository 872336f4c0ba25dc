"""Open and validate scenes, choose bands, read windows with their validity mask, band statistics.

Low-level functions take an *open* dataset (as rio-tiler's ``reader`` does); the API layer owns
opening and closing.
"""

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from lcmap.errors import (
    InputNotFoundError,
    InvalidSceneError,
    LcmapError,
    NoGeoreferenceWarning,
    NoNodataWarning,
)

log = logging.getLogger(__name__)

#: Percentiles mapped to 0 and 1 by the normalisation (clipped there for the networks: glints
#: and deep shadows).
CLIP_PERCENTILES = (2.0, 98.0)


#: GDAL block cache in MB while mapping (in this process and on each Dask worker): enough for
#: a few rows of 512-px blocks.
MAPPING_GDAL_CACHE_MB = 256


def bounded_gdal_cache(megabytes: int) -> contextlib.AbstractContextManager[Any]:
    """Cap GDAL's block cache (default: 5% of RAM, which grows with what is read).

    A user's own ``GDAL_CACHEMAX`` (environment or an enclosing ``rasterio.Env``) wins.
    rasterio hands an integer ``GDAL_CACHEMAX`` to GDAL as bytes (not as megabytes, as the
    config option reads values below 100000): passing ``256`` meant a 256-byte cache that
    decompressed every block many times over.
    """
    if "GDAL_CACHEMAX" in os.environ or (
        rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()
    ):
        return contextlib.nullcontext()
    env: contextlib.AbstractContextManager[Any] = rasterio.Env(GDAL_CACHEMAX=megabytes * 2**20)
    return env


def is_virtual(path: str | Path) -> bool:
    """Whether ``path`` is a GDAL virtual path or a URL (``/vsizip/...``, ``s3://...``)."""
    text = str(path)
    return text.startswith("/vsi") or "://" in text


def scene_path(path: str | Path) -> str | Path:
    """``path`` as GDAL should get it: the string itself for virtual paths and URLs (a
    ``Path`` would turn ``https://`` into ``https:/``), a ``Path`` for local files."""
    return str(path) if is_virtual(path) else Path(path)


def check_input_file(
    path: str | Path,
    role: str,
    wanted: str = "a raster file or a GDAL virtual path (/vsi...)",
    error: type[LcmapError] = InvalidSceneError,
) -> None:
    """Refuse a local input that is missing, a link loop, or not a regular file (a FIFO would
    block GDAL's open until killed; a device or folder is no raster and no model).

    Args:
        path: the input.
        role: what it is, for the message (``Scene``, ``Model file``...).
        wanted: what to give instead, for the message.
        error: the error raised for something other than a regular file.

    Raises:
        InputNotFoundError: nothing is there.
        LcmapError: ``error``, when something other than a regular file is there.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputNotFoundError(f"{role} {path} not found; check the path.") from None
    except OSError as exc:
        raise error(f"{role} {path} cannot be opened ({exc.strerror}).") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise error(f"{role} {path} is {kind}; give {wanted}.")


def open_scene(path: str | Path, what: str = "Scene") -> DatasetReader:
    """Open a raster for reading, with one-line errors for the usual mistakes (``what`` names
    it in them: a scene, a map).

    Anything GDAL opens is accepted: local files, ``/vsizip/``, ``/vsicurl/`` and other
    virtual paths, URLs (``https://``, ``s3://`` where credentials are set up).

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidSceneError: it is not a raster GDAL can read, or it has no pixels.
    """
    path = scene_path(path)
    if isinstance(path, Path):
        check_input_file(path, what)
    try:
        with warnings.catch_warnings():
            # lcmap says so itself (check_georeference), once, in its own words.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidSceneError(
            f"{path} is not a raster GDAL can read ({str(exc).splitlines()[0]}); "
            "expected a GeoTIFF or another GDAL raster."
        ) from exc
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise InvalidSceneError(f"{path} is empty ({src.width}x{src.height}, {src.count} bands).")
    if len(set(src.dtypes)) > 1:
        types = ", ".join(dict.fromkeys(src.dtypes))
        src.close()
        raise InvalidSceneError(
            f"{path} has bands of different data types ({types}); lcmap reads bands of one "
            "type: build the VRT or stack with one (gdalbuildvrt -ot, gdal_translate -ot)."
        )
    return src


def check_readable(path: str | Path, what: str = "Scene") -> None:
    """:func:`open_scene`'s one-line errors for a file read later by another library (rio-tiler),
    before any work."""
    with open_scene(path, what):
        pass


def resampling_for(src: DatasetReader) -> Any:
    """How to resample ``src`` onto another grid: nearest for classes (a palette, or one
    integer band of 8 bits: labels, masks), bilinear for measurements (reflectance, backscatter,
    elevation), which averaging does not corrupt."""
    from rasterio.enums import Resampling

    dtype = np.dtype(src.dtypes[0])
    byte_band = src.count == 1 and dtype.kind in "iu" and dtype.itemsize == 1
    categorical = src.colorinterp[0] == ColorInterp.palette or byte_band
    return Resampling.nearest if categorical else Resampling.bilinear


@contextlib.contextmanager
def open_on_grid(path: str | Path, ref: DatasetReader, fill: float | None = None) -> Iterator[Any]:
    """Open ``path`` as seen on ``ref``'s grid (CRS, transform, size), warped on the fly.

    A rasterio ``WarpedVRT``: each window read is warped when read (never the whole raster),
    with :func:`resampling_for` the raster; pixels it does not cover read as nodata (masked):
    ``fill``, or the raster's nodata, or 0 (integers) or NaN (floats).

    Raises:
        InputNotFoundError, InvalidSceneError: as :func:`open_scene`; a raster or a grid
            without a CRS cannot be warped.
    """
    from rasterio.vrt import WarpedVRT

    with open_scene(path) as src:
        if src.crs is None or ref.crs is None:
            raise InvalidSceneError(
                f"{Path(str(path)).name} or {Path(ref.name).name} has no CRS; a raster can only "
                "be read on another's grid when both are georeferenced."
            )
        # Where the raster does not reach: its own nodata, else 0 (integers) or NaN (floats).
        integer = np.dtype(src.dtypes[0]).kind in "iu"
        nodata = src.nodata if src.nodata is not None else (0 if integer else np.nan)
        nodata = fill if fill is not None else nodata
        with WarpedVRT(
            src,
            crs=ref.crs,
            transform=ref.transform,
            width=ref.width,
            height=ref.height,
            resampling=resampling_for(src),
            src_nodata=src.nodata,
            nodata=nodata,
        ) as vrt:
            yield vrt


def check_georeference(src: DatasetReader) -> bool:
    """Warn (once per scene) when the scene has no CRS or transform; True when it has both."""
    if src.crs is None or src.transform.is_identity:
        warnings.warn(
            f"{src.name} has no georeferencing (CRS or transform); the map will have none either.",
            NoGeoreferenceWarning,
            stacklevel=2,
        )
        return False
    return True


def resolve_bands(src: DatasetReader, bands: list[int] | None) -> list[int]:
    """Validate 1-based band indexes (all bands when None).

    Raises:
        InvalidSceneError: an index is out of range.
    """
    if bands is None:
        # All bands but an alpha band: alpha is the mask, not data.
        interp = src.colorinterp
        data = [b for b in range(1, src.count + 1) if interp[b - 1] != ColorInterp.alpha]
        return data or list(range(1, src.count + 1))
    bad = [b for b in bands if not 1 <= b <= src.count]
    if bad:
        raise InvalidSceneError(
            f"{Path(src.name).name} has {src.count} bands but band {bad[0]} was asked for; "
            f"use bands= with numbers from 1 to {src.count}."
        )
    return list(bands)


def band_facts(src: DatasetReader, bands: list[int]) -> list[dict[str, Any]]:
    """What ``src`` says of each of ``bands``: description, colour interpretation, dtype."""
    return [
        {
            "description": src.descriptions[b - 1] or "",
            "colorinterp": src.colorinterp[b - 1].name,
            "dtype": src.dtypes[b - 1],
        }
        for b in bands
    ]


def band_mismatches(facts: list[dict[str, Any]], seen: list[dict[str, Any]]) -> list[str]:
    """Where a scene's ``seen`` band facts contradict a model's ``facts``, one line each.

    Only facts both sides state count: an empty description or an ``undefined`` / ``gray``
    colour interpretation says nothing. The same contradiction on several bands is one item
    (``dtype 'uint16' (model: 'uint8') on bands 1-4``).
    """
    vague = ("", "undefined", "gray", "grey")
    found: dict[str, list[int]] = {}
    for i, (want, got) in enumerate(zip(facts, seen, strict=False), start=1):
        for key in ("description", "colorinterp", "dtype"):
            a, b = str(want.get(key, "")), str(got.get(key, ""))
            if a.lower() not in vague and b.lower() not in vague and a != b:
                found.setdefault(f"{key} {b!r} (model: {a!r})", []).append(i)
    return [
        f"{what} on band{'s' if len(on) > 1 else ''} {','.join(map(str, on))}"
        for what, on in found.items()
    ]


def has_nodata(src: DatasetReader) -> bool:
    """True if the scene declares nodata, a mask band or an alpha band."""
    return any(
        flags != [MaskFlags.all_valid] and MaskFlags.all_valid not in flags
        for flags in src.mask_flag_enums
    )


def warn_if_no_nodata(src: DatasetReader) -> None:
    """Warn that every pixel counts as data when the scene declares no nodata or mask."""
    if not has_nodata(src):
        warnings.warn(
            f"{Path(src.name).name} declares no nodata value or mask; every pixel is mapped. "
            "Set one with 'rio edit-info --nodata' if the scene has fill.",
            NoNodataWarning,
            stacklevel=2,
        )


def read_window(
    src: DatasetReader, window: Window, bands: list[int]
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Read ``bands`` over ``window``, which may extend past the scene's edges.

    Pixels outside the scene are filled by mirroring the scene at its edges, so a method sees
    plausible context there and the result does not depend on how the scene was tiled.

    Returns:
        ``(array, valid)``: (C, h, w) float32 band values and an (h, w) mask, True where the
        scene has data. A pixel is valid when at least one of ``bands`` is valid there (GDAL's
        per-dataset mask semantics for nodata values). Outside the scene both are mirrored.
    """
    col0, row0 = int(window.col_off), int(window.row_off)
    h, w = int(window.height), int(window.width)
    if _overlaps(src, col0, row0, w, h):
        inner = window.intersection(Window(0, 0, src.width, src.height))
    else:
        # Entirely outside the scene (only happens for tiny scenes): mirror the nearest window.
        inner = Window(0, 0, min(w, src.width), min(h, src.height))
        col0, row0 = 0, 0
    try:
        data = src.read(bands, window=inner, out_dtype="float32")
        # A pixel is valid where a chosen data band is; an alpha band chosen as data has an
        # all-valid mask of its own, so it does not vote (the others' masks come from it).
        interp = src.colorinterp
        voters = [b for b in bands if interp[b - 1] != ColorInterp.alpha] or bands
        valid = (src.read_masks(voters, window=inner) > 0).any(axis=0)
        data, valid = _finite(src, data, valid)
    except RasterioIOError as exc:
        cause = exc.__cause__ or exc.__context__ or exc  # GDAL's own words
        raise InvalidSceneError(
            f"{Path(src.name).name}: reading rows {int(inner.row_off)}-"
            f"{int(inner.row_off + inner.height)} failed ({str(cause).splitlines()[0]}); "
            "the file is truncated or corrupt."
        ) from exc
    top = int(inner.row_off) - row0
    left = int(inner.col_off) - col0
    bottom = h - top - int(inner.height)
    right = w - left - int(inner.width)
    if top or left or bottom or right:
        pads = ((top, bottom), (left, right))
        data = np.pad(data, ((0, 0), *pads), mode="symmetric")
        valid = np.pad(valid, pads, mode="symmetric")
    return data, valid


def _overlaps(src: DatasetReader, col: int, row: int, w: int, h: int) -> bool:
    return col < src.width and row < src.height and col + w > 0 and row + h > 0


@dataclass(frozen=True)
class Normalisation:
    """Per-band linear stretch, ``(x - low) / (high - low)``, clipped to 0..1 unless ``clip``
    is False.

    Networks read the clipped stretch (inputs in the range they were trained on, glints and
    deep shadows held at the ends). The spectral k-means reads it unclipped: the clip merges
    whatever lies beyond a band's percentiles, which costs a clustering its extremes.
    Stored in the model file, so every scene mapped with a model is stretched the same way.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    clip: bool = True

    def apply(
        self, array: NDArray[Any], valid: NDArray[np.bool_], *, in_place: bool = False
    ) -> NDArray[np.float32]:
        """Stretch (C, h, w) band values; nodata pixels become 0.

        ``in_place``: a float32 ``array`` is stretched where it is and returned (the engine's
        freshly read tiles: a new 4 MB array per tile cost more than the arithmetic). The same
        float32 operations either way, so the same bits.
        """
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        high = np.asarray(self.high, dtype=np.float32)[:, None, None]
        out: NDArray[np.float32] = (
            array if in_place and array.dtype == np.float32 else array.astype(np.float32)
        )
        out -= low
        out /= np.maximum(high - low, 1e-6)
        if self.clip:
            np.clip(out, 0.0, 1.0, out=out)
        if not valid.all():
            out[:, ~valid] = 0.0
        return out


@dataclass(frozen=True)
class ReadSpec:
    """Which bands to read and how to stretch them: one value through fitting (sampling),
    mapping (the engine), model files and patch suggestion.

    Attributes:
        bands: 1-based band indexes, in the order the method sees them.
        norm: their normalisation.
    """

    bands: tuple[int, ...]
    norm: Normalisation

    def read(
        self, src: DatasetReader, window: Window
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """The normalised bands over ``window`` (mirrored past the edges) and the mask."""
        data, valid = read_window(src, window, list(self.bands))
        return self.norm.apply(data, valid, in_place=True), valid


def sample_windows(
    src: DatasetReader, count: int, size: int, rng: np.random.Generator
) -> list[Window]:
    """``count`` random ``size`` x ``size`` windows inside the scene (clipped to small scenes)."""
    h, w = min(size, src.height), min(size, src.width)
    rows = rng.integers(0, src.height - h + 1, size=count)
    cols = rng.integers(0, src.width - w + 1, size=count)
    return [Window(int(c), int(r), w, h) for r, c in zip(rows, cols, strict=True)]


def scene_statistics(
    srcs: list[DatasetReader],
    bands: list[int],
    seed: int = 0,
    windows_per_scene: int = 32,
    size: int = 256,
    clip: bool = True,
) -> Normalisation:
    """Estimate the normalisation from windows drawn across the scenes.

    Percentiles :data:`CLIP_PERCENTILES` of the valid pixels of each band over up to
    ``windows_per_scene`` random windows a scene (a bounded read, whatever the scene's size);
    ``clip`` as in :class:`Normalisation`.

    Raises:
        InvalidSceneError: no valid pixel was found (an all-nodata scene).
    """
    rng = np.random.default_rng(seed)
    values: list[NDArray[np.float32]] = []
    for src in srcs:
        n = min(windows_per_scene, max(1, math.ceil(src.width * src.height / size**2)))
        windows = sample_windows(src, n, size, rng)
        found = False
        for window in windows:
            data, valid = read_window(src, window, bands)
            if valid.any():
                values.append(data[:, valid])
                found = True
        if not found:
            found = _any_valid(src, bands)
            if found:
                # Sparse data the random windows missed: fall back to a decimated full read.
                out_shape = (len(bands), min(src.height, 1024), min(src.width, 1024))
                data = src.read(bands, out_shape=out_shape, out_dtype="float32")
                valid = (src.read_masks(bands, out_shape=out_shape) > 0).any(axis=0)
                data, valid = _finite(src, data, valid)
                values.append(data[:, valid])
        if not found:
            raise InvalidSceneError(
                f"{Path(src.name).name} has no valid pixels in bands {bands} (all nodata); "
                "check the nodata value with 'rio info'."
            )
    pixels = np.concatenate(values, axis=1)
    low, high = np.percentile(pixels, CLIP_PERCENTILES, axis=1)
    high = np.where(high > low, high, low + 1.0)
    return Normalisation(tuple(float(v) for v in low), tuple(float(v) for v in high), clip)


def _any_valid(src: DatasetReader, bands: list[int]) -> bool:
    """Whether any pixel is valid, reading block by block (stops at the first)."""
    floats = np.dtype(src.dtypes[0]).kind == "f"
    for _, window in src.block_windows(1):
        valid = (src.read_masks(bands, window=window) > 0).any(axis=0)
        if floats and valid.any():
            valid = _finite(src, src.read(bands, window=window), valid)[1]
        if valid.any():
            return True
    return False


def _finite(
    src: DatasetReader, data: NDArray[Any], valid: NDArray[np.bool_]
) -> tuple[NDArray[Any], NDArray[np.bool_]]:
    """NaN and infinities are missing data, declared nodata or not (GDAL's own reading of a
    float raster): such pixels become invalid and their values 0, so no method sees them."""
    if np.dtype(src.dtypes[0]).kind != "f":
        return data, valid
    finite = np.isfinite(data)
    if finite.all():
        return data, valid
    return np.where(finite, data, 0).astype(data.dtype), valid & finite.all(axis=0)
