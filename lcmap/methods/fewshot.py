"""The one protocol few-shot learning asks of a model: "I provide an encoder".

``lcmap finetune`` and ``lcmap suggest-labels`` take any model whose method implements
:class:`FewShotEncoder` (CAS today, STEGO's frozen ViT + head, and any later encoder), so
neither knows which method made the model:

- :meth:`~FewShotEncoder.fewshot_inits`: the initial weights a tuned network can start from,
  each with a one-line description (``--init`` lists these, in this order; the first is the
  default);
- :meth:`~FewShotEncoder.embed_windows`: one embedding per window, the unit that
  ``suggest-labels`` ranks;
- :meth:`~FewShotEncoder.assign_windows`: each embedding's cluster, its distance to the
  cluster's centre and the confidence of the assignment;
- :meth:`~FewShotEncoder.tuned`: a trainable segmenter for K classes, initialised from the
  encoder's state as ``init`` says, with the fine-tuning options it takes
  (:class:`TunableSegmenter`). An option the tuned network does not take is refused
  (:class:`~lcmap.errors.InvalidOptionError`), never dropped.

This module imports no torch; the protocol's tensors are torch tensors at run time.

Example:
    >>> from lcmap.methods.fewshot import load_encoder
    >>> encoder, header = load_encoder("cas.lcmap")  # doctest: +SKIP
    >>> list(encoder.fewshot_inits())  # doctest: +SKIP
    ['cas', 'autoencoder', 'random']
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from lcmap.errors import InvalidModelError, InvalidOptionError
from lcmap.models import ModelHeader

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from lcmap.methods.base import LabelledPatches, Segmenter
    from lcmap.types import ProgressFn


class Assignment(NamedTuple):
    """Cluster assignment of N window embeddings: (N,) int64 cluster ids, (N,) distances to
    the assigned centre (the encoder's own units) and (N,) confidences in [0, 1]."""

    cluster: "Tensor"
    distance: "Tensor"
    confidence: "Tensor"


@runtime_checkable
class TunableSegmenter(Protocol):
    """A segmenter that learns K classes from labelled patches held in memory."""

    class_names: list[str] | None
    colours: list[tuple[int, int, int]] | None

    def train_on(
        self, patches: "LabelledPatches", progress: "ProgressFn | None" = None
    ) -> list[float]:
        """Train on labelled patches held in memory; returns the loss of every step."""
        ...


@runtime_checkable
class FewShotEncoder(Protocol):
    """What a method provides so that few-shot learning can start from its model."""

    @property
    def num_classes(self) -> int:
        """Clusters of the encoder's own (unsupervised) assignment."""
        ...

    def to(self, device: "torch.device") -> Any:
        """Move the encoder to ``device``."""
        ...

    def fewshot_inits(self) -> dict[str, str]:
        """Initial weights a tuned network can start from -> one-line description."""
        ...

    def embed_windows(self, batch: "Tensor") -> "Tensor":
        """(B, C, S, S) normalised windows -> (B, D) one embedding per window."""
        ...

    def assign_windows(self, embeddings: "Tensor") -> Assignment:
        """(N, D) window embeddings -> their clusters (see :class:`Assignment`)."""
        ...

    def tuned(self, num_classes: int, init: str, **options: Any) -> "Segmenter":
        """A :class:`TunableSegmenter` for ``num_classes`` classes started from ``init``.

        Raises:
            InvalidOptionError: ``init`` is not offered, or an option is not taken.
        """
        ...


def as_encoder(method: "Segmenter", name: str) -> FewShotEncoder:
    """``method`` as a :class:`FewShotEncoder`.

    Args:
        method: a loaded model's segmenter.
        name: how to name the model in a message (its file name).

    Raises:
        InvalidModelError: the method provides no encoder.
    """
    if not isinstance(method, FewShotEncoder):
        from lcmap.methods import fewshot_methods

        raise InvalidModelError(
            f"{name} is a '{method.info.name}' model, which provides no encoder for few-shot "
            f"learning; use a model made by one of: {', '.join(fewshot_methods())}."
        )
    return method


def load_encoder(path: str | Path) -> tuple[FewShotEncoder, ModelHeader]:
    """Load a model file and return its method as a :class:`FewShotEncoder`.

    Raises:
        InputNotFoundError, InvalidModelError: the file is missing, unreadable, or its method
            provides no encoder.
    """
    from lcmap.methods.loading import load_model

    path = Path(path)
    method, header = load_model(path)
    return as_encoder(method, path.name), header


def check_init(encoder: FewShotEncoder, init: str | None) -> str:
    """``init``, or the encoder's default (its first), checked against what it offers.

    Raises:
        InvalidOptionError: ``init`` is not one the encoder offers.
    """
    offered = encoder.fewshot_inits()
    if init is None:
        return next(iter(offered))
    if init not in offered:
        raise InvalidOptionError(
            f"init '{init}' is not offered by this model; it offers: "
            + "; ".join(f"{k} ({v})" for k, v in offered.items())
            + "."
        )
    return init


__all__ = [
    "Assignment",
    "FewShotEncoder",
    "TunableSegmenter",
    "as_encoder",
    "check_init",
    "load_encoder",
]
