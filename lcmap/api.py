"""The Python API: what the command line calls, one function a workflow.

Functions take paths, open and close files themselves, and import the torch engine only when
called, so ``import lcmap.api`` stays light. Each lives in its workflow module
(:mod:`lcmap.workflows`); this module only gathers them.

Example:
    >>> from lcmap import api
    >>> api.segment("scene.tif", "map.tif", classes=6)  # doctest: +SKIP
"""

from lcmap.workflows.describe import describe
from lcmap.workflows.fitting import check_run_numbers, default_method
from lcmap.workflows.segment import DEFAULT_TILE, SegmentResult, segment
from lcmap.workflows.train import train

__all__ = [
    "DEFAULT_TILE",
    "SegmentResult",
    "check_run_numbers",
    "default_method",
    "describe",
    "segment",
    "train",
]
