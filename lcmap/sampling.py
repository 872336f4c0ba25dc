"""Random windows for fitting: the :class:`~lcmap.methods.base.WindowSampler` implementations.

:class:`SceneSampler` reads windows from scene files (:func:`open_sampler`), with labels when
given; :class:`ArraySampler` serves notebooks, tests and small scenes already in memory. Both
draw with one loop (:meth:`_Sampler.sample`): a seeded generator picks a scene, then window
positions until one holds at least :data:`MIN_VALID_FRACTION` data (up to 20 tries).
"""

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from rasterio.io import DatasetReader
from rasterio.windows import Window

from lcmap.errors import InvalidSceneError
from lcmap.io.scene import (
    ReadSpec,
    open_on_grid,
    open_scene,
    read_window,
    sample_windows,
    scene_statistics,
)
from lcmap.methods.base import SampleBatch
from lcmap.types import UNLABELLED

#: A window is skipped when less than this fraction of it holds data (up to _MAX_TRIES times).
MIN_VALID_FRACTION = 0.5
_MAX_TRIES = 20


_G = TypeVar("_G", bound=np.generic)


def pad_reflect(array: NDArray[_G], size: int) -> NDArray[_G]:
    """Pad the last two axes of ``array`` by reflection up to at least ``size`` pixels."""
    h, w = array.shape[-2:]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if not (pad_h or pad_w):
        return array
    widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)]
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > 1 else "edge"
    padded: NDArray[_G] = np.pad(array, widths, mode=mode)
    return padded


class _Sampler:
    """The draw loop both samplers share; subclasses say how to weigh scenes and draw."""

    rng: np.random.Generator

    def _weights(self) -> NDArray[np.float64]:
        """Probability of drawing from each scene."""
        raise NotImplementedError

    def _draw(self, i: int, size: int) -> tuple[Any, NDArray[np.bool_]]:
        """One random window of scene ``i``: a handle for :meth:`_take` and its validity."""
        raise NotImplementedError

    def _take(
        self, i: int, handle: Any, valid: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[Any] | None]:
        """The window's normalised image and labels (None without labels)."""
        raise NotImplementedError

    def sample(self, count: int, size: int) -> SampleBatch:
        """``count`` random ``size`` x ``size`` windows, mostly with data."""
        weights = self._weights()
        images, valids, labels = [], [], []
        for _ in range(count):
            i = int(self.rng.choice(len(weights), p=weights))
            for _ in range(_MAX_TRIES):
                handle, valid = self._draw(i, size)
                if valid.mean() >= MIN_VALID_FRACTION:
                    break
            image, label = self._take(i, handle, valid)
            images.append(image)
            valids.append(valid)
            if label is not None:
                labels.append(label)
        return SampleBatch(
            image=torch.from_numpy(np.stack(images)),
            valid=torch.from_numpy(np.stack(valids)),
            labels=torch.from_numpy(np.stack(labels).astype(np.int64)) if labels else None,
        )


class ArraySampler(_Sampler):
    """Draw random windows from arrays already in memory.

    Args:
        images: per scene, (C, H, W) float32 normalised bands (nodata filled with 0).
        valid: per scene, (H, W) bool masks; None = all valid.
        labels: per scene, (H, W) integer class ids (255 = unlabelled); None = no labels.
        seed: seeds the window positions.
    """

    def __init__(
        self,
        images: Sequence[NDArray[np.floating]],
        valid: Sequence[NDArray[np.bool_]] | None = None,
        labels: Sequence[NDArray[np.integer]] | None = None,
        seed: int = 0,
    ) -> None:
        if not images:
            raise ValueError("ArraySampler needs at least one image.")
        self.images = [np.asarray(im, dtype=np.float32) for im in images]
        self.valid = (
            [np.asarray(v, dtype=bool) for v in valid]
            if valid is not None
            else [np.ones(im.shape[1:], dtype=bool) for im in self.images]
        )
        self.labels = [np.asarray(lb) for lb in labels] if labels is not None else None
        self.rng = np.random.default_rng(seed)

    @property
    def in_channels(self) -> int:
        """Number of bands."""
        return int(self.images[0].shape[0])

    @property
    def valid_pixels(self) -> int:
        """Valid pixels over all arrays."""
        return int(sum(v.sum() for v in self.valid))

    def _weights(self) -> NDArray[np.float64]:
        weights = np.array([max(1, int(v.sum())) for v in self.valid], dtype=np.float64)
        out: NDArray[np.float64] = weights / weights.sum()
        return out

    def _draw(self, i: int, size: int) -> tuple[Any, NDArray[np.bool_]]:
        valid = pad_reflect(self.valid[i], size)
        h, w = valid.shape
        r = int(self.rng.integers(0, h - size + 1))
        c = int(self.rng.integers(0, w - size + 1))
        return (r, c), valid[r : r + size, c : c + size]

    def _take(
        self, i: int, handle: Any, valid: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[Any] | None]:
        (r, c), size = handle, valid.shape[0]
        image = pad_reflect(self.images[i], size)[:, r : r + size, c : c + size]
        if self.labels is None:
            return image, None
        return image, pad_reflect(self.labels[i], size)[r : r + size, c : c + size]


class SceneSampler(_Sampler):
    """Draw random windows from open scenes (and optional labels).

    Args:
        scenes: open datasets with at least ``max(spec.bands)`` bands.
        spec: the bands to read and their normalisation.
        labels: optional single-band label datasets aligned with ``scenes`` (255 = unlabelled,
            as is their nodata).
        seed: seeds window positions.
    """

    def __init__(
        self,
        scenes: Sequence[DatasetReader],
        spec: ReadSpec,
        labels: Sequence[DatasetReader] | None = None,
        seed: int = 0,
    ) -> None:
        self.scenes = list(scenes)
        self.spec = spec
        self.labels = list(labels) if labels is not None else None
        if self.labels is not None:
            if len(self.labels) != len(self.scenes):
                raise InvalidSceneError(
                    f"{len(self.labels)} label rasters for {len(self.scenes)} scenes; "
                    "give one label raster per scene."
                )
            for scene, lab in zip(self.scenes, self.labels, strict=True):
                if (lab.width, lab.height) != (scene.width, scene.height):
                    raise InvalidSceneError(
                        f"Labels {Path(lab.name).name} are {lab.width}x{lab.height} but scene "
                        f"{Path(scene.name).name} is {scene.width}x{scene.height}; "
                        "labels must be on the scene's grid."
                    )
        self.rng = np.random.default_rng(seed)

    @property
    def in_channels(self) -> int:
        """Number of bands a window has."""
        return len(self.spec.bands)

    @property
    def valid_pixels(self) -> int:
        """Pixels over all scenes (nodata is not counted out: that would need a full read)."""
        return int(sum(s.width * s.height for s in self.scenes))

    def _weights(self) -> NDArray[np.float64]:
        area = np.array([s.width * s.height for s in self.scenes], dtype=np.float64)
        weights: NDArray[np.float64] = area / area.sum()
        return weights

    def _draw(self, i: int, size: int) -> tuple[Any, NDArray[np.bool_]]:
        src = self.scenes[i]
        (window,) = sample_windows(src, 1, size, self.rng)
        window = Window(window.col_off, window.row_off, size, size)
        data, valid = read_window(src, window, list(self.spec.bands))
        return (window, data), valid

    def _take(
        self, i: int, handle: Any, valid: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[Any] | None]:
        window, data = handle
        image = self.spec.norm.apply(data, valid)
        if self.labels is None:
            return image, None
        return image, self._read_labels(self.labels[i], window)

    @staticmethod
    def _read_labels(src: DatasetReader, window: Window) -> NDArray[np.int64]:
        """Labels over ``window``; 255 outside the raster and where it has no data."""
        out = np.full((int(window.height), int(window.width)), UNLABELLED, dtype=np.int64)
        inner = window.intersection(Window(0, 0, src.width, src.height))
        r, c = int(inner.row_off - window.row_off), int(inner.col_off - window.col_off)
        h, w = int(inner.height), int(inner.width)
        data = src.read(1, window=inner).astype(np.int64)
        data[src.read_masks(1, window=inner) == 0] = UNLABELLED
        out[r : r + h, c : c + w] = data
        return out


class PairSampler(SceneSampler):
    """Windows of scenes and, on the same footprint, of their partners (another sensor or
    date), the partners read on each scene's grid through a warped view
    (:func:`lcmap.io.scene.open_on_grid`).

    A window's image holds the scene's bands, then the partner's (each normalised by its own
    spec); it counts as valid where both have data. :attr:`split` is the scene's band count.

    Args:
        scenes: open scenes.
        partners: per scene, its partner seen on the scene's grid.
        spec: the scenes' bands and normalisation.
        partner_spec: the partners' bands and normalisation.
        seed: seeds window positions.
    """

    def __init__(
        self,
        scenes: Sequence[DatasetReader],
        partners: Sequence[Any],
        spec: ReadSpec,
        partner_spec: ReadSpec,
        seed: int = 0,
    ) -> None:
        super().__init__(scenes, spec, None, seed)
        self.partners = list(partners)
        self.partner_spec = partner_spec

    @property
    def split(self) -> int:
        """Bands of the scene; the partner's follow."""
        return len(self.spec.bands)

    @property
    def in_channels(self) -> int:
        """Bands of a window: the scene's and the partner's."""
        return len(self.spec.bands) + len(self.partner_spec.bands)

    def _draw(self, i: int, size: int) -> tuple[Any, NDArray[np.bool_]]:
        (window, data), valid = super()._draw(i, size)
        other, other_valid = read_window(self.partners[i], window, list(self.partner_spec.bands))
        return (window, data, other, valid, other_valid), valid & other_valid

    def _take(
        self, i: int, handle: Any, valid: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[Any] | None]:
        _, data, other, own_valid, other_valid = handle
        image = np.concatenate(
            [
                self.spec.norm.apply(data, own_valid),
                self.partner_spec.norm.apply(other, other_valid),
            ]
        )
        return image, None


@contextlib.contextmanager
def open_sampler(
    scenes: Sequence[str | Path],
    spec: ReadSpec,
    labels: Sequence[str | Path] | None = None,
    seed: int = 0,
) -> Iterator[SceneSampler]:
    """Open scenes (and label rasters) and yield a :class:`SceneSampler` over them."""
    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(open_scene(p)) for p in scenes]
        labs = [stack.enter_context(open_scene(p)) for p in labels] if labels else None
        yield SceneSampler(srcs, spec, labs, seed)


@contextlib.contextmanager
def open_pair_sampler(
    scenes: Sequence[str | Path],
    partners: Sequence[str | Path],
    spec: ReadSpec,
    seed: int = 0,
) -> Iterator[PairSampler]:
    """Open scenes and their partners on the scenes' grids; the partners' normalisation is
    estimated over all their bands (:func:`lcmap.io.scene.scene_statistics`)."""
    if len(partners) != len(scenes):
        raise InvalidSceneError(
            f"{len(partners)} partners for {len(scenes)} scenes; give one each."
        )
    with contextlib.ExitStack() as stack:
        srcs = [stack.enter_context(open_scene(p)) for p in scenes]
        views = [
            stack.enter_context(open_on_grid(p, s)) for p, s in zip(partners, srcs, strict=True)
        ]
        counts = {v.count for v in views}
        if len(counts) > 1:
            raise InvalidSceneError(f"The partners have different band counts ({sorted(counts)}).")
        bands = list(range(1, views[0].count + 1))
        partner_spec = ReadSpec(tuple(bands), scene_statistics(views, bands, seed))
        yield PairSampler(srcs, views, spec, partner_spec, seed)
