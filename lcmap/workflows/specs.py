"""The value objects a workflow request is built from, each checked when it is made.

A workflow (:func:`~lcmap.workflows.segment.segment`, :func:`~lcmap.workflows.train.train`,
...) takes the scene and a few of these instead of a long list of keywords, and the command
line builds them from its shared option groups (:mod:`lcmap.cli._options`):

- :class:`MethodSpec`: what is fitted (method, number of classes, bands, the method's options);
- :class:`RunSpec`: how it runs (device, seed, batch size, progress callback);
- :class:`TilingSpec`: how a scene is cut into tiles;
- :class:`ScaleSpec`: whether it is mapped in parts on Dask, and resumed;
- :class:`OutputSpec`: where the result goes and how (replace, GDAL creation options);
- :class:`LabelSpec`, :class:`PatchSpec`: the labels and patches a few-shot model is tuned on.

Example:
    >>> from lcmap.api import MethodSpec, OutputSpec, RunSpec, segment
    >>> segment("scene.tif", OutputSpec("map.tif", overwrite=True),
    ...         method=MethodSpec("kmeans", classes=6), run=RunSpec(seed=1))  # doctest: +SKIP
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcmap.errors import InvalidOptionError
from lcmap.types import ProgressFn

#: Largest halo: a read window of 2 * 4096 px around a tile is already 256 MB a band.
MAX_HALO = 4096


def _in_range(name: str, value: int | None, low: int, high: int) -> None:
    """Refuse a number that would fail or exhaust memory later, naming its range."""
    if value is not None and not low <= value <= high:
        raise InvalidOptionError(f"{name}={value} is out of range; use {low} to {high}.")


@dataclass(frozen=True)
class MethodSpec:
    """What is fitted: the method, K, the bands it reads, and the method's own options.

    With a saved model, the model fixes the method, classes and bands; ``options`` then holds
    only those that change how a trained model maps (the method's ``apply_options``).

    Attributes:
        name: registry name (``lcmap methods``); None = the default method.
        classes: number of classes K (the method's default when None).
        bands: 1-based band indexes (all bands, or the model's, when None).
        options: the method's options (``-p KEY=VALUE``), checked by its config.
    """

    name: str | None = None
    classes: int | None = None
    bands: Sequence[int] | None = None
    options: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, value: "MethodSpec | str | None") -> "MethodSpec":
        """``value`` itself, or a spec naming the method ``value`` (None: the default)."""
        return value if isinstance(value, MethodSpec) else cls(name=value)

    @property
    def band_list(self) -> list[int] | None:
        return list(self.bands) if self.bands is not None else None

    @property
    def option_dict(self) -> dict[str, Any] | None:
        return dict(self.options) if self.options else None


@dataclass(frozen=True)
class RunSpec:
    """How a workflow runs.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: fixes sampling and initialisation.
        batch_size: windows or tiles per batch (None: chosen for the device).
        progress: ``(done, total)`` callback; :func:`lcmap.types.start_phase` names phases.
    """

    device: str = "auto"
    seed: int = 0
    batch_size: int | None = None
    progress: ProgressFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _in_range("seed", self.seed, 0, 2**32 - 1)
        _in_range("batch_size", self.batch_size, 1, 4096)


@dataclass(frozen=True)
class TilingSpec:
    """How a scene is cut into tiles (the map does not depend on it for the ViT methods).

    Attributes:
        tile: tile core size in pixels (:data:`~lcmap.workflows.segment.DEFAULT_TILE` when
            None).
        halo: context pixels on each side (the method's receptive field when None).
    """

    tile: int | None = None
    halo: int | None = None

    def __post_init__(self) -> None:
        _in_range("tile", self.tile, 1, 2**31 - 1)  # larger than the scene: shrinks to it
        _in_range("halo", self.halo, 0, MAX_HALO)


@dataclass(frozen=True)
class ScaleSpec:
    """Mapping in parts on Dask (:mod:`lcmap.scale`); the map is the same as in one process.

    Attributes:
        workers: a new local cluster of this many worker processes.
        scheduler: the address of a running cluster (``tcp://...``).
        resume: keep the parts beside the output and reuse those a killed run finished.
        part_rows: tile rows a part (about 16 Mpx a part when None).
        client: a Dask client already open (many-scene runs share one).
    """

    workers: int | None = None
    scheduler: str | None = None
    resume: bool = False
    part_rows: int | None = None
    client: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from lcmap.scale.cluster import check_scale_flags

        check_scale_flags(self.workers, self.scheduler)
        if self.part_rows is not None and self.part_rows < 1:
            raise InvalidOptionError(f"part_rows={self.part_rows}: give at least 1 tile row.")

    @property
    def in_parts(self) -> bool:
        """Whether the scene is mapped in parts."""
        return bool(self.workers or self.scheduler or self.resume or self.client is not None)


@dataclass(frozen=True)
class OutputSpec:
    """Where a result goes.

    Attributes:
        path: the file (or, for several scenes, the folder) to write.
        overwrite: replace existing outputs (never an input, a folder or a device).
        creation_options: GDAL COG creation options over lcmap's defaults (lossless only).
    """

    path: Path
    overwrite: bool = False
    creation_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, value: "OutputSpec | str | Path") -> "OutputSpec":
        """``value`` itself, or a spec writing to the path ``value`` without replacing."""
        return value if isinstance(value, OutputSpec) else cls(Path(value))


#: Default side of a patch in pixels (Ghosh et al.'s few-shot unit).
DEFAULT_PATCH = 128


@dataclass(frozen=True)
class PatchSpec:
    """The labelled patches a few-shot model is tuned on.

    Attributes:
        count: train on this many patches (random, seeded), or the first N of ``file``; None =
            every labelled patch.
        file: a ``lcmap suggest-labels`` GPKG whose footprints are the patches, in order.
        size: side of a grid patch in pixels.
    """

    count: int | None = None
    file: str | Path | None = None
    size: int = DEFAULT_PATCH

    def __post_init__(self) -> None:
        if self.size < 16:
            raise InvalidOptionError(
                f"patch size {self.size} is too small; use at least 16 pixels."
            )
        _in_range("patches", self.count, 1, 2**31 - 1)


@dataclass(frozen=True)
class LabelSpec:
    """Labels of the scenes, one file a scene, and how their classes are read.

    Attributes:
        paths: per scene, a label raster on its grid (class ids from 0, 255 = unlabelled) or a
            polygon file with a class column (ids or names).
        class_column: the polygons' class column (default: ``class``, ``label``... or the only
            column).
        class_names: one name per class id (label 0 first); for polygons with class names,
            their order gives the ids. Default: the sorted names, or ``class 0``, ``class 1``...
    """

    paths: Sequence[str | Path]
    class_column: str | None = None
    class_names: Sequence[str] | None = None

    @classmethod
    def of(cls, value: "LabelSpec | Sequence[str | Path]") -> "LabelSpec":
        """``value`` itself, or the label files ``value`` with the default reading."""
        return value if isinstance(value, LabelSpec) else cls(list(value))


__all__ = [
    "DEFAULT_PATCH",
    "MAX_HALO",
    "LabelSpec",
    "MethodSpec",
    "OutputSpec",
    "PatchSpec",
    "RunSpec",
    "ScaleSpec",
    "TilingSpec",
]
