"""The describe workflow (``lcmap info``): a scene, a label map or a model file, as a dict."""

import contextlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lcmap.io.bands import true_colour
from lcmap.io.ground import pixel_size_m
from lcmap.io.legend import raster_class_names
from lcmap.io.scene import (
    check_input_file,
    open_scene,
    scene_path,
)
from lcmap.models import file_sha256

log = logging.getLogger(__name__)


def describe(path: str | Path) -> dict[str, Any]:
    """Describe a scene, a label map or a model file as a JSON-friendly dict.

    Example:
        >>> describe("landcover.tif")["kind"]  # doctest: +SKIP
        'label map'
    """
    from lcmap.models import NotAModelError, read_header

    path = scene_path(path)
    if isinstance(path, Path):
        check_input_file(path, "Input")
        # A .lcmap file is a model whatever is wrong with it: its own error, not GDAL's.
        try:
            header = read_header(path)
        except NotAModelError:
            if path.suffix == ".lcmap":
                raise
        else:
            return {
                "kind": "model",
                "path": str(path),
                "sha256": file_sha256(path),
                **asdict(header),
            }
    with open_scene(path) as src:
        tags = src.tags()
        info: dict[str, Any] = {
            "kind": "label map" if "LCMAP_METHOD" in tags else "scene",
            "path": str(path),
            "driver": src.driver,
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtypes": list(src.dtypes),
            "nodata": src.nodata,
            "crs": src.crs.to_string() if src.crs else None,
            "transform": list(src.transform)[:6],
            "bounds": list(src.bounds),
            "res": list(src.res),
            "block_shapes": [list(b) for b in src.block_shapes],
            "overviews": src.overviews(1),
            "compression": src.compression.value if src.compression else None,
            "descriptions": list(src.descriptions),
        }
        if info["kind"] == "scene":
            # What the default method and the pictures go by (lcmap segment without -m).
            pixel = pixel_size_m(src)
            info["pixel_size_m"] = round(pixel, 2) if pixel is not None else None
            found = true_colour(src)
            info["true_colour"] = {"bands": list(found[0]), "from": found[1]} if found else None
        if info["kind"] == "label map":
            names = raster_class_names(src) or {}
            info["class_names"] = [names[i] for i in sorted(names)]
            with contextlib.suppress(ValueError, RecursionError):  # a damaged tag is left out
                info["provenance"] = json.loads(tags.get("LCMAP_PROVENANCE", "{}"))
        return info
