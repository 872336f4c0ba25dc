"""The GDAL COG creation options of a label map: lcmap's defaults, and the check of a user's
(``--co``) before any work. Only lossless codecs, and overviews that keep labels labels."""

import difflib
from collections.abc import Mapping

from lcmap.errors import InvalidOptionError

#: COG layout (overridable with --co): 512-px tiles, DEFLATE with the horizontal predictor,
#: overviews resampled by MODE so a coarse pixel shows its most common class. DEFLATE level 1:
#: much faster than the default level for a little more size (label maps compress well at any
#: level); pass --co LEVEL=9 for the smallest file.
DEFAULT_CREATION_OPTIONS = {
    "BLOCKSIZE": "512",
    "COMPRESS": "DEFLATE",
    "LEVEL": "1",
    "PREDICTOR": "YES",
    "OVERVIEWS": "AUTO",
    "OVERVIEW_RESAMPLING": "MODE",
    "NUM_THREADS": "ALL_CPUS",
    "BIGTIFF": "IF_SAFER",
}


_YES_NO = ("YES", "NO", "TRUE", "FALSE", "ON", "OFF", "1", "0")


#: Overview resampling that keeps labels labels: MODE (the most common class) or NEAREST (one
#: of the classes below). AVERAGE, CUBIC and the like invent classes none of the pixels has.
_LABEL_RESAMPLING = ("MODE", "NEAREST")


#: LEVEL's range for each codec that takes one (GDAL's GeoTIFF driver).
_LEVELS = {
    "DEFLATE": (1, 12),
    "LERC_DEFLATE": (1, 12),
    "ZSTD": (1, 22),
    "LERC_ZSTD": (1, 22),
    "LZMA": (0, 9),
}


#: The GDAL COG driver's creation options lcmap accepts, each with a check of its value
#: (a tuple of choices, or a whole number between two bounds). Only lossless codecs: lossy
#: ones (JPEG, WEBP, LERC with an error bound) change label values.
COG_OPTIONS: dict[str, tuple[str, ...] | tuple[int, int] | str] = {
    "BLOCKSIZE": "blocksize",
    "COMPRESS": (
        "NONE",
        "DEFLATE",
        "LZW",
        "ZSTD",
        "LZMA",
        "PACKBITS",
        "LERC",
        "LERC_DEFLATE",
        "LERC_ZSTD",
    ),
    "LEVEL": "level",
    "PREDICTOR": ("YES", "NO", "STANDARD", "1", "2"),
    "NUM_THREADS": (1, 256),
    "BIGTIFF": ("YES", "NO", "IF_NEEDED", "IF_SAFER"),
    "OVERVIEWS": ("AUTO", "IGNORE_EXISTING", "FORCE_USE_EXISTING", "NONE"),
    "OVERVIEW_RESAMPLING": _LABEL_RESAMPLING,
    "RESAMPLING": _LABEL_RESAMPLING,
    "OVERVIEW_COUNT": (1, 30),  # each level halves the map: 30 covers any raster GDAL opens
    "OVERVIEW_COMPRESS": ("NONE", "DEFLATE", "LZW", "ZSTD", "LZMA", "PACKBITS"),
    "OVERVIEW_PREDICTOR": ("YES", "NO", "STANDARD", "1", "2"),
    "SPARSE_OK": _YES_NO,
    "STATISTICS": ("AUTO", *_YES_NO),
    "GEOTIFF_VERSION": ("AUTO", "1.0", "1.1"),
    "MAX_Z_ERROR": ("0", "0.0"),  # LERC's error bound: anything but 0 rounds labels away
}


def check_creation_options(options: Mapping[str, str] | None) -> dict[str, str]:
    """Validate COG creation options before any work; keys upper-cased.

    A label map takes only lossless compression and overviews resampled by MODE or NEAREST.

    Raises:
        InvalidOptionError: an unknown key, or a value GDAL would reject, crash on, or that
            would change labels.
    """
    out: dict[str, str] = {}
    for key, value in (options or {}).items():
        name, text = key.upper(), str(value).strip()
        if name not in COG_OPTIONS:
            close = difflib.get_close_matches(name, COG_OPTIONS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise InvalidOptionError(
                f"Unknown COG creation option {key}{hint}; known: {', '.join(COG_OPTIONS)}."
            )
        out[name] = _checked_value(name, text, COG_OPTIONS[name])
    if "LEVEL" in out:
        _check_level(out["LEVEL"], out.get("COMPRESS", DEFAULT_CREATION_OPTIONS["COMPRESS"]))
    return out


def _checked_value(name: str, text: str, rule: tuple[str, ...] | tuple[int, int] | str) -> str:
    """``text`` as ``name``'s value, checked against its rule (see :data:`COG_OPTIONS`)."""
    if name == "MAX_Z_ERROR" and text not in rule:
        raise InvalidOptionError(
            f"Creation option MAX_Z_ERROR={text} makes LERC lossy, which changes labels; a "
            "label map takes only lossless compression (MAX_Z_ERROR=0)."
        )
    if name.endswith("RESAMPLING") and text.upper() not in rule:
        raise InvalidOptionError(
            f"Creation option {name}={text} would put classes into the overviews that no pixel "
            "below them has; use MODE (the default) or NEAREST."
        )
    if isinstance(rule, tuple) and isinstance(rule[0], int):
        low, high = rule
        if name == "NUM_THREADS" and text.upper() == "ALL_CPUS":
            return "ALL_CPUS"
        if not (text.isdigit() and low <= int(text) <= high):
            extra = " or ALL_CPUS" if name == "NUM_THREADS" else ""
            raise InvalidOptionError(
                f"Creation option {name}={text} must be a whole number from {low} to {high}{extra}."
            )
        return text
    if isinstance(rule, tuple) and text.upper() not in rule:
        raise InvalidOptionError(
            f"Creation option {name}={text} is not valid; use one of {', '.join(map(str, rule))}."
        )
    if rule in ("level", "blocksize") and not text.isdigit():
        raise InvalidOptionError(f"Creation option {name}={text} must be a whole number.")
    if rule == "blocksize" and not (128 <= int(text) <= 4096 and int(text) % 16 == 0):
        raise InvalidOptionError(
            f"Creation option BLOCKSIZE={text} must be a multiple of 16 from 128 to 4096."
        )
    return text


def _check_level(level: str, codec: str) -> None:
    """LEVEL within what the chosen codec takes (GDAL clamps or fails late otherwise)."""
    codec = codec.upper()
    if codec not in _LEVELS:
        raise InvalidOptionError(
            f"Creation option LEVEL does not apply to COMPRESS={codec}; it goes with "
            f"{', '.join(_LEVELS)}."
        )
    low, high = _LEVELS[codec]
    if not low <= int(level) <= high:
        raise InvalidOptionError(
            f"Creation option LEVEL={level} is out of range for {codec}; use {low} to {high}."
        )
