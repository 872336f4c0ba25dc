"""The Python API: what the command line calls, one function a workflow.

Functions take paths, open and close files themselves, and import the torch engine only when
called, so ``import lcmap.api`` stays light. Each lives in its workflow module
(:mod:`lcmap.workflows`); this module only gathers them.

Example:
    >>> from lcmap import api
    >>> api.segment("scene.tif", "map.tif", method=api.MethodSpec("kmeans", classes=6))
    ... # doctest: +SKIP
"""

from lcmap.workflows.describe import describe
from lcmap.workflows.evaluate_index import evaluate_index
from lcmap.workflows.finetune import finetune
from lcmap.workflows.fitting import default_method
from lcmap.workflows.scenes import ScenesResult, segment_many
from lcmap.workflows.segment import DEFAULT_TILE, SegmentResult, segment
from lcmap.workflows.specs import (
    LabelSpec,
    MethodSpec,
    OutputSpec,
    PatchSpec,
    RunSpec,
    ScaleSpec,
    TilingSpec,
)
from lcmap.workflows.suggest import suggest_labels
from lcmap.workflows.train import train

__all__ = [
    "DEFAULT_TILE",
    "LabelSpec",
    "MethodSpec",
    "OutputSpec",
    "PatchSpec",
    "RunSpec",
    "ScaleSpec",
    "ScenesResult",
    "SegmentResult",
    "TilingSpec",
    "default_method",
    "describe",
    "evaluate_index",
    "finetune",
    "segment",
    "segment_many",
    "suggest_labels",
    "train",
]
