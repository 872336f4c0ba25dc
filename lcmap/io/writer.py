"""Stream a label raster to disk and publish it as a Cloud-Optimised GeoTIFF, all or nothing.

Rows arrive band by band from the stitcher and go to a tiled temporary GeoTIFF beside the
target; :meth:`LabelWriter.commit` turns it into a COG (internal overviews resampled with
``MODE``, which keeps labels labels), embeds the colour table, class names and provenance tags,
writes the ``.lcmap.json`` sidecar and renames both into place. Any failure or interruption
before that leaves nothing behind (DESIGN.md contract 5).
"""

import contextlib
import itertools
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import rasterio
import rasterio.shutil
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from lcmap.errors import OutputExistsError, OutputPathError
from lcmap.io.cog_options import DEFAULT_CREATION_OPTIONS, check_creation_options
from lcmap.io.legend import category_xml, style_qml
from lcmap.io.overviews import ModePyramid, overview_sizes
from lcmap.io.staging import (
    check_local,
    check_output,
    committing,
    out_of_room,
    publish,
    temp_path,
)
from lcmap.stitch import NODATA

log = logging.getLogger(__name__)


#: Label rows on their way to the COG (the staging file, a part file of a scaled-out run):
#: single band, tiled like the COG, ZSTD level 1 for speed (the COG copy compresses for keeps).
STAGING_PROFILE: dict[str, Any] = {
    "driver": "GTiff",
    "count": 1,
    "tiled": True,
    "blockxsize": 512,
    "blockysize": 512,
    "compress": "ZSTD",
    "zstd_level": 1,
    "bigtiff": "IF_SAFER",
}


def provenance_tags(provenance: Mapping[str, Any]) -> dict[str, str]:
    """The GeoTIFF tags that carry a map's provenance (see :class:`LabelWriter`)."""
    from lcmap import __version__

    tags = {
        "LCMAP_VERSION": str(provenance.get("lcmap_version", __version__)),
        "LCMAP_METHOD": str(provenance.get("method", "")),
        "LCMAP_PROVENANCE": json.dumps(provenance, sort_keys=True, default=str),
    }
    if provenance.get("model_sha256"):
        tags["LCMAP_MODEL_SHA256"] = str(provenance["model_sha256"])
    return tags


def aux_path(output: str | Path) -> Path:
    """GDAL's PAM sidecar of ``output``: ``map.tif`` -> ``map.tif.aux.xml``."""
    output = Path(output)
    return output.with_name(output.name + ".aux.xml")


def sidecar_path(output: str | Path) -> Path:
    """Where the provenance sidecar of ``output`` goes: ``map.tif`` -> ``map.lcmap.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".lcmap.json")


def style_path(output: str | Path) -> Path:
    """QGIS's default style of ``output``: ``map.tif`` -> ``map.qml`` (the name QGIS looks for)."""
    return Path(output).with_suffix(".qml")


def map_sidecars(output: str | Path) -> list[Path]:
    """The files a label map is written with, beside it: GDAL's ``.aux.xml`` (class names and
    attribute table) and the QGIS style; the provenance JSON is :func:`sidecar_path`."""
    return [aux_path(output), style_path(output)]


def check_map_output(path: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """:func:`check_output` for a label map and its sidecars (``.aux.xml``, ``.qml``,
    ``.lcmap.json``); the name must end .tif/.tiff.

    Raises:
        OutputPathError: another suffix (``map.png`` would be a GeoTIFF under a PNG name),
            or any reason :func:`check_output` gives.
    """
    check_local(path)
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        raise OutputPathError(
            f"Output {path.name}: lcmap writes Cloud-Optimised GeoTIFFs, so the name must end "
            f".tif or .tiff (convert afterwards with gdal_translate for other formats)."
        )
    return check_output(path, overwrite, [*map_sidecars(path), sidecar_path(path)], inputs=inputs)


@dataclass(frozen=True)
class MapGrid:
    """The grid a map is written on (the scene's): size, CRS (None for an ungeoreferenced
    scene) and affine transform."""

    width: int
    height: int
    crs: CRS | None
    transform: Affine

    @classmethod
    def of(cls, src: Any) -> "MapGrid":
        """The grid of an open dataset."""
        return cls(src.width, src.height, src.crs, src.transform)


class LabelWriter:
    """Write label rows to ``path`` as a COG, atomically.

    Args:
        path: the target GeoTIFF.
        grid: the scene's grid.
        dtype: uint8 (nodata 255) or uint16 (nodata 65535): :func:`lcmap.stitch.label_dtype`
            of the classes the method predicts, which a model with merged classes has more of
            than it has names.
        class_names: one name per class (label 0 first).
        colours: one RGB triple per class.
        tags: extra dataset tags (the scene's own: ``AREA_OR_POINT``...); ``LCMAP_*`` tags
            among them are dropped, the map's own come from ``sidecar``.
        creation_options: overrides of :data:`DEFAULT_CREATION_OPTIONS`.
        overwrite: replace an existing file.
        sidecar: the map's provenance (JSON: lcmap version, method, config, bands...), written
            beside the map (``map.lcmap.json``) and, as ``LCMAP_PROVENANCE``, ``LCMAP_METHOD``
            and ``LCMAP_MODEL_SHA256``, into its tags; None for none.
        parts: instead of rows written here, finished part files that together cover the
            scene, each ``(path, first row)``, full width, in row order (:mod:`lcmap.scale`).
            :meth:`commit` makes the COG from a VRT over them, in one pass.

    Example:
        >>> with LabelWriter("map.tif", ...) as writer:        # doctest: +SKIP
        ...     writer.write_rows(0, labels)
        ...     writer.commit()
    """

    def __init__(
        self,
        path: str | Path,
        *,
        grid: MapGrid,
        dtype: np.dtype[Any],
        class_names: Sequence[str],
        colours: Sequence[tuple[int, int, int]],
        tags: Mapping[str, str] | None = None,
        creation_options: Mapping[str, str] | None = None,
        overwrite: bool = False,
        sidecar: Mapping[str, Any] | None = None,
        parts: Sequence[tuple[Path, int]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.parts = list(parts) if parts is not None else None
        self.sidecar = dict(sidecar) if sidecar is not None else None
        sidecars = map_sidecars(self.path) + ([sidecar_path(self.path)] if sidecar else [])
        check_output(self.path, overwrite, sidecars)
        self.overwrite = overwrite
        self.width, self.height = grid.width, grid.height
        self.crs, self.transform = grid.crs, grid.transform
        self.dtype = np.dtype(dtype)
        self.nodata = NODATA[self.dtype]
        self.class_names = list(class_names)
        self.colours = list(colours)
        # The scene's own tags, less those the map writes itself (a map of a map has them).
        own = ("CLASS_NAMES", "OVR_RESAMPLING_ALG")
        self.tags = {
            k: v for k, v in (tags or {}).items() if not k.startswith("LCMAP_") and k not in own
        }
        if self.sidecar is not None:
            self.tags.update(provenance_tags(self.sidecar))
        self.creation_options = {
            **DEFAULT_CREATION_OPTIONS,
            **check_creation_options(creation_options),
        }
        self._tmp_paths: list[Path] = []
        self._dst: Any = None
        self._source: Path | None = None  # what the COG copy reads
        self._pyramid: ModePyramid | None = None
        self._committed = False

    def _streams_overviews(self) -> bool:
        """Whether lcmap builds the MODE overviews from the rows (:mod:`lcmap.io.overviews`):
        those the COG driver would build itself by default (no other resampling or count)."""
        co = self.creation_options
        return (
            co.get("OVERVIEWS", "AUTO").upper() == "AUTO"
            and co.get("OVERVIEW_RESAMPLING", "").upper() == "MODE"
            and "OVERVIEW_COUNT" not in co
        )

    def _temp(self, suffix: str) -> Path:
        tmp = temp_path(self.path, suffix)
        self._tmp_paths.append(tmp)
        return tmp

    def __enter__(self) -> Self:
        try:
            # The staging file favours speed (ZSTD level 1); the COG copy compresses for keeps.
            # An ungeoreferenced scene gives an ungeoreferenced map; the API warned already.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                if self.parts is None:
                    self._source = self._temp(".partial.tif")
                    self._dst = self._open_staging(self._source)
                    if self._streams_overviews():
                        self._pyramid = self._open_pyramid()
                else:
                    self._source = self._temp(".vrt")
                    overviews = self._pyramid_of_parts(self.parts)
                    self._dst = self._open_parts(self._source, self.parts, overviews)
        except BaseException as exc:  # __exit__ is not called when __enter__ fails
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _open_staging(self, tmp: Path) -> Any:
        return rasterio.open(
            tmp,
            "w",
            width=self.width,
            height=self.height,
            dtype=self.dtype.name,
            crs=self.crs,
            transform=self.transform,
            nodata=self.nodata,
            **STAGING_PROFILE,
        )

    def _open_pyramid(self) -> ModePyramid | None:
        """Staging files for the overview levels (None when the map needs none)."""
        blocksize = int(self.creation_options.get("BLOCKSIZE", "512"))
        if not overview_sizes(self.width, self.height, blocksize):
            return None
        profile = {**STAGING_PROFILE, "dtype": self.dtype.name, "nodata": self.nodata}
        return ModePyramid(
            lambda i: self._temp(f".ovr{i}.tif"),
            self.width,
            self.height,
            blocksize,
            profile,
            self.nodata,
        )

    def _pyramid_of_parts(self, parts: Sequence[tuple[Path, int]]) -> list[Path]:
        """The overview levels of finished part files, read once in row order (the same
        levels a one-pass map streams, so both give the same COG, byte for byte)."""
        if not self._streams_overviews():
            return []
        self._pyramid = self._open_pyramid()
        if self._pyramid is None:
            return []
        for part, first in parts:
            with rasterio.open(part) as src:
                for top in range(0, src.height, 1024):
                    rows = src.read(
                        1, window=Window(0, top, src.width, min(1024, src.height - top))
                    )
                    self._pyramid.add(first + top, rows)
        self._pyramid.close()
        return self._pyramid.paths() if self._pyramid.complete else []

    def _open_parts(
        self, vrt: Path, parts: Sequence[tuple[Path, int]], overviews: Sequence[Path] = ()
    ) -> Any:
        """A VRT stacking the part files, opened for update (colour table and tags go there);
        ``overviews``: files holding its overview levels, finest first."""
        from xml.sax.saxutils import escape

        gdal_type = {"uint8": "Byte", "uint16": "UInt16"}[self.dtype.name]
        bounds = [row for _, row in parts] + [self.height]
        if bounds[0] != 0 or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"parts do not tile rows 0..{self.height} in order: {bounds}")
        sources = []
        for (part, row), end in zip(parts, bounds[1:], strict=True):
            rect = f'xOff="0" yOff="{{}}" xSize="{self.width}" ySize="{end - row}"'
            sources.append(
                "    <SimpleSource>"
                f'<SourceFilename relativeToVRT="0">{escape(str(Path(part).resolve()))}'
                "</SourceFilename><SourceBand>1</SourceBand>"
                f"<SrcRect {rect.format(0)}/><DstRect {rect.format(row)}/></SimpleSource>"
            )
        sources += [
            f'    <Overview><SourceFilename relativeToVRT="0">{escape(str(Path(o).resolve()))}'
            "</SourceFilename><SourceBand>1</SourceBand></Overview>"
            for o in overviews
        ]
        srs = f"  <SRS>{escape(self.crs.to_wkt())}</SRS>\n" if self.crs else ""
        geo = ",".join(repr(v) for v in self.transform.to_gdal())
        # An ungeoreferenced scene (no CRS, identity transform) stays without a geotransform.
        ungeoreferenced = self.crs is None and self.transform.is_identity
        geo_xml = "" if ungeoreferenced else f"  <GeoTransform>{geo}</GeoTransform>\n"
        vrt.write_text(
            f'<VRTDataset rasterXSize="{self.width}" rasterYSize="{self.height}">\n{srs}'
            f"{geo_xml}"
            f'  <VRTRasterBand dataType="{gdal_type}" band="1">\n'
            f"    <NoDataValue>{self.nodata}</NoDataValue>\n" + "\n".join(sources) + "\n"
            "  </VRTRasterBand>\n</VRTDataset>\n"
        )
        return rasterio.open(vrt, "r+")

    def write_rows(self, row: int, labels: NDArray[np.unsignedinteger]) -> None:
        """Write a (rows, width) band of labels starting at scene row ``row``."""
        if self.parts is not None:
            raise RuntimeError("this writer assembles part files; rows cannot be written to it")
        window = Window(0, row, self.width, labels.shape[0])
        labels = labels.astype(self.dtype, copy=False)
        with self._write_errors():
            self._dst.write(labels, 1, window=window)
            if self._pyramid is not None:
                self._pyramid.add(row, labels)

    @contextlib.contextmanager
    def _write_errors(self) -> Iterator[None]:
        """A failed write because the disk is full or a file-size limit was hit: one clear error.

        GDAL reports those in several ways (``Write failed``, a libtiff ``File too large``, or a
        later read of the broken file), so the file system is asked as well.
        """
        try:
            yield
        except Exception as exc:
            if not (isinstance(exc, OSError) or type(exc).__module__.startswith("rasterio")):
                raise
            if out_of_room(exc, self.path.parent, self._tmp_paths):
                raise OutputPathError(
                    f"Writing {self.path} failed: the disk holding it is full or a file-size "
                    "limit (ulimit -f) was reached; nothing was written. Free space or write "
                    "elsewhere."
                ) from exc
            raise

    def commit(self) -> None:
        """Finish the map: colour table, tags, COG conversion, sidecar, then rename into place."""
        with self._write_errors():
            self._commit()

    def _commit(self) -> None:
        options = dict(self.creation_options)
        overviews: list[Path] = []
        if self._pyramid is not None:
            self._pyramid.close()
            if self._pyramid.complete:
                # The overviews made from the rows: the COG copy keeps them instead of
                # making its own in a second pass over the map.
                overviews = self._pyramid.paths()
                options["OVERVIEWS"] = "FORCE_USE_EXISTING"
            else:
                log.debug("rows arrived out of order: the COG driver builds the overviews")
        if self.parts is None:
            # The staging file is read through a VRT (as parts are), which takes the colour
            # table and tags (a GeoTIFF still being written cannot take a palette) and the
            # overviews.
            self._dst.close()
            assert self._source is not None
            staging, self._source = self._source, self._temp(".vrt")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = self._open_parts(self._source, [(staging, 0)], overviews)
        dst = self._dst
        # A TIFF palette has no alpha channel: GDAL reads unused entries as opaque black and
        # the nodata entry as transparent. The legend comes from the categories and the RAT
        # of the .aux.xml sidecar, which name exactly the K classes.
        colormap = {i: (*c, 255) for i, c in enumerate(self.colours)}
        colormap[self.nodata] = (0, 0, 0, 0)
        dst.write_colormap(1, colormap)
        dst.set_band_description(1, "land-cover class")
        dst.update_tags(CLASS_NAMES=json.dumps(self.class_names), **self.tags)
        if options.get("OVERVIEWS", "AUTO").upper() != "NONE":
            # What made the overviews (the COG driver notes NEAREST for those it copies).
            dst.update_tags(OVR_RESAMPLING_ALG=options.get("OVERVIEW_RESAMPLING", "MODE").upper())
        dst.update_tags(1, **{f"CLASS_{i}": name for i, name in enumerate(self.class_names)})
        dst.close()
        self._dst = None
        cog = self._temp(".cog.tif")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            rasterio.shutil.copy(self._source, cog, driver="COG", **options)
        aux_tmp = self._temp(".aux.xml")
        aux_tmp.write_text(category_xml(self.class_names, self.colours))
        style_tmp = self._temp(".qml")
        style_tmp.write_text(style_qml(self.class_names, self.colours))
        side_tmp = None
        if self.sidecar is not None:
            side_tmp = self._temp(".json")
            side_tmp.write_text(json.dumps(self.sidecar, indent=2, default=str) + "\n")
        if not self.overwrite and self.path.exists():
            raise OutputExistsError(f"{self.path} appeared while mapping; pass overwrite=True.")
        with committing():  # the map and its sidecars together, whatever signal arrives
            publish(cog, self.path)
            publish(aux_tmp, aux_path(self.path))
            publish(style_tmp, style_path(self.path))
            if side_tmp is not None:
                publish(side_tmp, sidecar_path(self.path))
            self._committed = True
        log.info("wrote %s", self.path)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._dst is not None:
            self._dst.close()
        if self._pyramid is not None:
            self._pyramid.close()
        for tmp in self._tmp_paths:
            tmp.unlink(missing_ok=True)


__all__ = [
    "STAGING_PROFILE",
    "LabelWriter",
    "MapGrid",
    "aux_path",
    "check_map_output",
    "map_sidecars",
    "provenance_tags",
    "sidecar_path",
    "style_path",
]
