"""The interface every segmentation method implements.

A method turns normalised image tiles into per-class *scores*; the stitcher blends scores from
overlapping tiles and takes the argmax once. Scene- or collection-level state (centroids,
trained heads) is learnt once in :meth:`Segmenter.fit` from windows drawn across the scenes,
never per tile, so a label means the same thing everywhere (DESIGN.md contract 3).
"""

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, Self

import torch
from torch import Tensor

from lcmap.types import ProgressFn

__all__ = ["MethodInfo", "ProgressFn", "SampleBatch", "Segmenter", "WindowSampler"]


@dataclass(frozen=True)
class MethodInfo:
    """Static facts about a method, known before it is built.

    Attributes:
        name: registry key and CLI value, e.g. ``"stego"``.
        summary: one line shown by ``lcmap methods``.
        global_context: True when a prediction depends on the whole tile (a ViT's attention):
            overlapping tiles are then blended with smooth weights instead of cropped.
        size_multiple: tiles are padded to a multiple of this many pixels (a ViT's patch size).
        needs_fit: True if :meth:`Segmenter.fit` must run before :meth:`Segmenter.predict`.
        apply_options: builder options that only change how a trained model predicts (a
            CRF, where the backbone weights live), so they may be given again when a saved
            model is applied; every other option is fixed by training.
    """

    name: str
    summary: str
    global_context: bool = False
    size_multiple: int = 1
    needs_fit: bool = True
    apply_options: frozenset[str] = frozenset()


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
        and crop-centre stitching the map equals whole-scene inference. For a
        ``global_context`` method it is the suggested overlap for blending.
        """

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

        The engine uses it for crop-centre stitching (no ``global_context``): the argmax runs
        on the device and only labels come back, K times less to copy than scores. Override
        it when labels are cheaper than scores (k-means: nearest centroid); ties must go to
        the lowest class, as ``argmax`` does.
        """
        return self.predict(batch).argmax(dim=1)

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

    def to(self, device: torch.device) -> Self:
        """Move the method's modules and tensors to ``device``; subclasses extend this."""
        self.device = device
        return self
