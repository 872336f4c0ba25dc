"""The interface every segmentation method implements.

A method turns normalised image tiles into per-class *scores*; the stitcher takes the argmax
once per pixel and keeps each tile's core. Scene- or collection-level state (centroids,
trained heads) is learnt once in :meth:`Segmenter.fit` from windows drawn across the scenes,
never per tile, so a label means the same thing everywhere (DESIGN.md contract 3).
"""

import abc
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, NamedTuple, Protocol, Self

import torch
from torch import Tensor

from lcmap.errors import InvalidSceneError
from lcmap.types import UNLABELLED, ProgressFn

__all__ = [
    "LabelledPatches",
    "MethodInfo",
    "ProgressFn",
    "SampleBatch",
    "Segmenter",
    "Window",
    "WindowSampler",
    "training_labels",
]


@dataclass(frozen=True)
class Window:
    """The fixed window a method's network sees, and the stride it slides at.

    A prediction that depends on everything the network sees (a ViT's attention, a deep
    UNet's receptive field and pooling grid) changes with the size of its input. Such a method
    declares a window: it is only ever run on ``size`` x ``size`` windows, placed every
    ``stride`` pixels on a grid anchored to the scene, and the windows' scores are blended
    with a smooth weight (:func:`lcmap.tiling.window_weights`). Its halo is then
    ``size - stride``, and the map does not depend on the tile size.

    Attributes:
        size: window side in pixels (the size the method was trained at).
        stride: pixels between windows; divides ``size``, so every pixel away from the
            scene's edge is covered by ``(size / stride)**2`` windows.
    """

    size: int
    stride: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.stride < 1 or self.size % self.stride:
            raise ValueError(
                f"window stride {self.stride} must be a positive divisor of the window size "
                f"{self.size}"
            )

    @property
    def halo(self) -> int:
        """Context a tile needs so that it holds every window over its core pixels."""
        return self.size - self.stride


@dataclass(frozen=True)
class MethodInfo:
    """Static facts about a method, known before it is built.

    Attributes:
        name: registry key and CLI value, e.g. ``"stego"``.
        summary: one line shown by ``lcmap methods``.
        size_multiple: tiles are a multiple of this many pixels (methods without a
            :attr:`Segmenter.window`; a windowed method's tiles are multiples of its stride).
        needs_fit: True if :meth:`Segmenter.fit` must run before :meth:`Segmenter.predict`.
        apply_options: builder options that only change how a trained model predicts (a
            CRF, where the backbone weights live), so they may be given again when a saved
            model is applied; every other option is fixed by training.
        start_options: options naming where training started (a ``weights`` file) that a
            saved model does not need: its file holds every tensor, so loading it ignores
            them (the model maps on another machine, or after the start file is gone).
        rgb_first: the method's network reads its first three bands as red, green, blue (a
            ViT pre-trained on photographs): without ``bands``, a scene's identified true
            colour bands are read first (:func:`lcmap.io.bands.rgb_first`).
        clip_input: the method reads the band stretch clipped to 0..1
            (:class:`lcmap.io.scene.Normalisation`).
    """

    name: str
    summary: str
    size_multiple: int = 1
    needs_fit: bool = True
    apply_options: frozenset[str] = frozenset()
    start_options: frozenset[str] = frozenset()
    rgb_first: bool = False
    clip_input: bool = True


class SampleBatch(NamedTuple):
    """Windows drawn from the scenes for fitting.

    Attributes:
        image: (N, C, S, S) float32, normalised bands (roughly 0..1), nodata filled with 0.
        valid: (N, S, S) bool, True where the scene has data.
        labels: (N, S, S) int64 class ids (255 = unlabelled), or None when no labels were given.
    """

    image: Tensor
    valid: Tensor
    labels: Tensor | None


class LabelledPatches(NamedTuple):
    """Labelled patches held in memory, what a few-shot network learns from.

    Attributes:
        image: (N, C, S, S) float32 normalised bands.
        labels: (N, S, S) int64 class ids; 255 = unlabelled (ignored).
        valid: (N, S, S) bool, False where the scene has no data (ignored too); None = all valid.
    """

    image: Tensor
    labels: Tensor
    valid: Tensor | None = None

    @classmethod
    def of(cls, batch: SampleBatch, method: str, hint: str) -> "LabelledPatches":
        """The labelled windows of ``batch``; ``method`` learns from labels and ``hint`` says
        where else to get them.

        Raises:
            InvalidSceneError: the windows were drawn without labels.
        """
        if batch.labels is None:
            raise InvalidSceneError(
                f"{method} learns from labels but none were given; pass labels= (a label "
                f"raster per scene, 255 = unlabelled), {hint}."
            )
        return cls(batch.image, batch.labels, batch.valid)


class WindowSampler(Protocol):
    """Draws random windows across one or more scenes (seeded, reproducible).

    The engine implements this; methods use it in :meth:`Segmenter.fit`.
    """

    @property
    def in_channels(self) -> int:
        """Number of bands in each window."""

    @property
    def valid_pixels(self) -> int:
        """Approximate number of valid pixels over all scenes (to size epochs)."""

    def sample(self, count: int, size: int) -> SampleBatch:
        """Return ``count`` windows of ``size`` x ``size`` pixels at random positions.

        Windows mostly covering nodata are skipped where possible. Scenes smaller than ``size``
        are padded by reflection.
        """


def best_class(scores: Tensor) -> Tensor:
    """(B, K, H, W) scores -> (B, H, W) index of the highest, the lowest index on ties, as
    ``argmax``. On the CPU through ``max(dim=1).indices``: the same indices (documented, and
    tested with ties and NaN), and far faster than ``argmax`` over the class axis in torch's
    CPU kernels; elsewhere ``argmax`` itself."""
    if scores.device.type == "cpu":
        return scores.max(dim=1).indices
    return scores.argmax(dim=1)


class Segmenter(abc.ABC):
    """Turns normalised image tiles into per-class scores, consistently across scenes.

    Subclasses set ``info``, implement :meth:`predict`, :meth:`config`, and usually
    :meth:`fit`, and keep their learnt tensors in :meth:`state_dict` so the model file
    (safetensors + JSON header, see :mod:`lcmap.models`) can rebuild them.
    """

    info: ClassVar[MethodInfo]

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        #: Class names, one per class, when the classes have meaning (fine-tuned models).
        self.class_names: list[str] | None = None
        #: RGB colours, one per class, for the output colour table; None = default palette.
        self.colours: list[tuple[int, int, int]] | None = None
        #: Output class of each of the K predicted classes, after ``lcmap classes`` named and
        #: merged them (a model file's ``classes`` record); None = the K classes as they are.
        self.relabel: list[int] | None = None

    @classmethod
    def build(cls, num_classes: int | None = None, **options: Any) -> Self:
        """The method with its options checked by the options dataclass its constructor takes
        (names, types and ranges: ``-p KEY=VALUE``); what the registry calls
        (``NAME = "lcmap.methods.NAME:NameSegmenter.build"``).

        Raises:
            InvalidOptionError: an unknown name, a value of the wrong kind, or out of range.
        """
        from lcmap.methods.options import make_config, options_dataclass

        config = options_dataclass(cls)
        if config is None:
            raise TypeError(f"{cls.__name__} takes no options dataclass; register a builder.")
        construct: Callable[[Any], Self] = cls  # a method's constructor takes its options
        return construct(
            make_config(config, cls.info.name, {"num_classes": num_classes, **options})
        )

    @property
    @abc.abstractmethod
    def num_classes(self) -> int:
        """Number of score channels K that :meth:`predict` returns."""

    @property
    @abc.abstractmethod
    def in_channels(self) -> int | None:
        """Number of bands the method expects; None while it still accepts any count."""

    @property
    @abc.abstractmethod
    def halo(self) -> int:
        """Pixels of context needed on each side of a tile.

        For a method with a finite receptive field this is its radius: with at least this halo
        and crop-centre stitching the map equals whole-scene inference. For a method with a
        :attr:`window` it is ``window.halo``.
        """

    @property
    def window(self) -> Window | None:
        """The fixed window the network sees, or None when :meth:`predict` takes any size."""
        return None

    @property
    def window_batch(self) -> int:
        """Windows per :meth:`predict` call when a tile is scored window by window."""
        return 16

    @property
    def tile_multiple(self) -> int:
        """Tile sizes are rounded up to this: the window stride, or ``info.size_multiple``."""
        return self.window.stride if self.window is not None else self.info.size_multiple

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:  # noqa: B027
        """Learn scene- or collection-level state from windows drawn by ``sampler``.

        Default: nothing to learn. Runs with gradients enabled, on ``self.device``.
        """

    @abc.abstractmethod
    def predict(self, batch: Tensor) -> Tensor:
        """Score a batch of tiles.

        Args:
            batch: (B, C, H, W) float32 normalised bands on ``self.device``; H and W are
                multiples of ``info.size_multiple``.

        Returns:
            (B, K, H, W) scores (higher = more likely) on the same device. The engine calls
            this under ``torch.inference_mode()`` and, on CUDA, bf16 autocast.
        """

    def predict_labels(self, batch: Tensor) -> Tensor:
        """(B, H, W) class of each pixel: ``argmax`` of :meth:`predict` over classes.

        The argmax runs on the device and only labels come back, K times less to copy than
        scores. Override it when labels are cheaper than scores (k-means: nearest centroid);
        ties must go to the lowest class, as ``argmax`` does.
        """
        return best_class(self.predict(batch))

    def predict_tiles(self, batch: Tensor) -> Tensor:
        """Score tiles of any size: :meth:`predict`, or its fixed windows blended.

        A method with a :attr:`window` sees only windows of that size, on a grid anchored
        at the batch's top-left pixel; tiles that are not ``window.size`` plus a multiple of
        the stride are mirrored at the right and bottom to fit. What the engine and every
        other caller use to score tiles.
        """
        if self.window is None:
            return self.predict(batch)
        from lcmap.methods._sliding import sliding_scores

        return sliding_scores(self.predict, batch, self.window, self.window_batch)

    def predict_tile_labels(self, batch: Tensor) -> Tensor:
        """(B, H, W) class of each pixel of tiles of any size (see :meth:`predict_tiles`),
        renamed and merged as :attr:`relabel` says."""
        if self.window is None:
            labels = self.predict_labels(batch)
        else:
            labels = best_class(self.predict_tiles(batch))
        if self.relabel is None:
            return labels
        # A merged class is the union of its classes' pixels: the best class, then its group.
        table = torch.tensor(self.relabel, dtype=labels.dtype, device=labels.device)
        return table[labels.long()]

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this method (before loading state)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Tensor]:
        """Learnt tensors, saved in the model file (flat names, contiguous CPU tensors)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore tensors saved by :meth:`state_dict`."""

    def header(self) -> dict[str, Any]:
        """Extra JSON facts for the model header (backbone name and weight sha256...)."""
        return {}

    def network(self) -> dict[str, Any] | None:
        """The network this method trains, as :func:`lcmap.nets.network_record` gives it
        (stored as ``header.extra["network"]``, so another objective can rebuild it as an
        encoder); None for a method without one (k-means)."""
        return None

    def prepare_mapping(self, pixels: int) -> None:
        """Called once before a mapping run over ``pixels`` pixels of tile windows (halos
        included) on the method's device: a method may build what pays at that size (k-means
        compiles its scoring kernel). Nothing by default."""
        del pixels  # used by the methods that override this

    def to(self, device: torch.device) -> Self:
        """Move the method's modules and tensors to ``device``; subclasses extend this."""
        self.device = device
        return self


class FixedWindows:
    """For a method scored in one fixed window (``_window``) over each tile, mixed in before
    :class:`Segmenter`: the window, and the halo it needs around a tile's core."""

    _window: Window

    @property
    def halo(self) -> int:
        """Context for every mapping window over a tile's core: window size - stride."""
        return self._window.halo

    @property
    def window(self) -> Window:
        """The mapping window: its size and the stride between windows."""
        return self._window


class BandFittedSegmenter(Segmenter):
    """A method with K fixed by its options and a band count learnt when it is fitted: the
    properties and ``config`` every such method would otherwise repeat.

    Subclasses set ``cfg`` (their frozen options dataclass, with an ``in_channels`` field),
    ``_k`` and ``_in_channels`` (None until fitted).
    """

    cfg: Any
    _k: int
    _in_channels: int | None

    @property
    def num_classes(self) -> int:
        """Number of classes (clusters) K."""
        return self._k

    @property
    def in_channels(self) -> int | None:
        """Band count (known once fitted)."""
        return self._in_channels

    def config(self) -> dict[str, Any]:
        """The options, with the band count once fitted."""
        return asdict(replace(self.cfg, in_channels=self._in_channels))


def training_labels(patches: LabelledPatches, num_classes: int) -> tuple[Tensor, int]:
    """Labels of ``patches`` to learn from: int64, 255 (unlabelled) where they are not
    valid, and how many pixels are labelled.

    Raises:
        InvalidSceneError: a label outside 0..K-1 (and not 255), or no labelled pixel.
    """
    labels = patches.labels.long().clone()
    if patches.valid is not None:
        labels[~patches.valid.bool()] = UNLABELLED
    bad = (labels != UNLABELLED) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise InvalidSceneError(
            f"labels contain class {int(labels[bad].max())} but the model has {num_classes} "
            f"classes (0..{num_classes - 1}, 255 = unlabelled); pass class_names= with every "
            "class."
        )
    labelled = int((labels != UNLABELLED).sum())
    if labelled == 0:
        raise InvalidSceneError(
            "the training patches hold no labelled pixel; check that the labels overlap "
            "the scenes (255 = unlabelled)."
        )
    return labels, labelled
