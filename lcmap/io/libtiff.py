"""libtiff's own error lines, kept off stderr unless asked for.

GDAL routes libtiff's errors about an open file into its own error handling (and so into
lcmap's one-line messages), but its low-level write and seek callbacks report with no file
attached (``_tiffWriteProc: File too large.``), which libtiff hands to its process-wide
handler: by default a ``fprintf`` to stderr, out of Python's reach. A full disk or a
``ulimit -f`` then printed three to six such lines before lcmap's own line, which already says
what happened. GDAL leaves that process-wide handler as libtiff set it, so clearing it on the
libtiff GDAL loaded silences only those lines; ``-v`` keeps them.
"""

import ctypes
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _loaded_libtiff() -> str | None:
    """The path of the libtiff this process has loaded (the one GDAL uses), or None."""
    import rasterio  # noqa: F401  (loads GDAL, and with it libtiff)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: leave libtiff's lines as they are
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if "/libtiff" in path and ".so" in path:
            return path.strip()
    return None


def silence_error_lines() -> bool:
    """Clear libtiff's process-wide error handler; False when libtiff could not be found."""
    path = _loaded_libtiff()
    if path is None:
        return False
    try:
        lib = ctypes.CDLL(path)
        lib.TIFFSetErrorHandler.restype = ctypes.c_void_p
        lib.TIFFSetErrorHandler.argtypes = [ctypes.c_void_p]
        lib.TIFFSetErrorHandler(None)
    except (OSError, AttributeError) as err:
        log.debug("libtiff's error lines stay on stderr: %s", err)
        return False
    return True
