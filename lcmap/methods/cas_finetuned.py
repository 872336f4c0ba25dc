"""Few-shot segmentation with a UNet fine-tuned from a CAS model (Ghosh et al., section 4.2.1).

The CAS UNet gets its skip connections and a classification layer back (Fig. 2) and is trained
with pixel-wise cross-entropy on a handful of labelled patches. Classes are weighted by inverse
frequency in the labelled pixels, as in Ghandali et al., so that a rare class in ten patches still
counts; label 255 is ignored. Three initialisations reproduce the paper's rows:

- ``cas``: encoder and decoder from the CAS model (phase 2, after clustering);
- ``autoencoder``: from the phase-1 autoencoder stored in the same model file;
- ``random``: from scratch (``OnlyLabeled``).

When initialised from a pre-trained model the skip slices of the decoder convolutions are
zeroed, so the network starts out computing exactly the pre-trained decoder's features and
learns how much of the skips to use.

Predictions are softmax class probabilities. Like ``cas``, a score depends on a finite
neighbourhood (the UNet's receptive field, 200 px at depth 4) and on the stride-16 pooling
grid: the halo covers half the field in multiples of the stride, tiles are multiples of the
stride, and crop-centre stitching gives the map of whole-scene inference at any tile size.

Use :func:`lcmap.workflows.finetune.finetune` (``lcmap finetune``) to tune from a ``cas`` model
with label rasters or polygons; ``lcmap train --method cas_finetuned --labels L`` trains from
scratch.
"""

import logging
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.errors import InvalidModelError, InvalidOptionError, InvalidSceneError
from lcmap.methods._supervised import IGNORE_INDEX, Schedule, class_weights, train_classifier
from lcmap.methods.base import (
    BandFittedSegmenter,
    LabelledPatches,
    MethodInfo,
    ProgressFn,
    WindowSampler,
)
from lcmap.methods.configs import INITS, CasFinetunedConfig
from lcmap.nets import build_net, network_record
from lcmap.nets.unet import UNet, local_halo, pad_to_multiple, random_dihedral, receptive_field

if TYPE_CHECKING:
    from lcmap.methods.cas import CasSegmenter

log = logging.getLogger(__name__)


class CasFinetunedSegmenter(BandFittedSegmenter):
    """UNet with skip connections and a classification layer, trained on labelled patches.

    Args:
        num_classes: number of classes K (labels 0..K-1; 255 = unlabelled).
        in_channels: band count; None until fitted (or given by :func:`from_cas`).
        width: UNet channels at full resolution (as the CAS model's).
        depth: number of 2x poolings (as the CAS model's).
        embed_dim: bottleneck channels (as the CAS model's).
        patch_size: side of the windows drawn by :meth:`fit` from a sampler.
        crop_size: side of the random crops trained on (None = whole patches); smaller crops
            make steps cheaper without changing which pixels are labelled.
        batch_size: patches per optimiser step.
        steps: optimiser steps (used when ``epochs`` is None).
        epochs: passes over the labelled patches; overrides ``steps`` when given.
        lr: AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        class_weighting: ``inverse`` (inverse frequency, clipped) or ``none``.
        train_patches: windows drawn from the sampler by :meth:`fit`.
        init: how the weights were initialised (recorded: cas, autoencoder or random).
        seed: seeds patch order, crops and augmentation.
    """

    info = MethodInfo(
        name="cas_finetuned",
        summary="UNet fine-tuned on a few labelled patches (from a cas model); real classes.",
        size_multiple=16,
    )

    def __init__(self, config: CasFinetunedConfig | None = None) -> None:
        super().__init__()
        cfg = config or CasFinetunedConfig()
        self.cfg = cfg
        self._k, self._in_channels = cfg.num_classes, cfg.in_channels
        self.width, self.depth, self.embed_dim = cfg.width, cfg.depth, cfg.embed_dim
        self.patch_size, self.crop_size = cfg.patch_size, cfg.crop_size
        self.batch_size, self.steps, self.epochs = cfg.batch_size, cfg.steps, cfg.epochs
        self.lr, self.weight_decay = cfg.lr, cfg.weight_decay
        self.class_weighting, self.train_patches = cfg.class_weighting, cfg.train_patches
        self.init, self.seed = cfg.init, cfg.seed
        if self.crop_size is not None and self.crop_size > self.patch_size:
            raise InvalidOptionError(
                f"cas_finetuned option crop_size={self.crop_size} must not exceed "
                f"patch_size={self.patch_size}."
            )
        self.net: UNet | None = None
        if self._in_channels is not None:
            self.net = self._new_net(self._in_channels)

    @classmethod
    def from_cas(
        cls, cas: "CasSegmenter", num_classes: int, init: str = "cas", **kwargs: Any
    ) -> "CasFinetunedSegmenter":
        """A tuned model with the CAS model's architecture, initialised as ``init`` says.

        Args:
            cas: a fitted (or loaded) CAS model.
            num_classes: number of classes to predict.
            init: ``cas`` (phase-2 weights), ``autoencoder`` (phase-1 weights) or ``random``.
            **kwargs: other :class:`CasFinetunedSegmenter` options (steps, lr, batch_size...).

        Raises:
            InvalidModelError: ``init`` is autoencoder but the model kept no phase-1 weights.
        """
        if init not in INITS:
            raise ValueError(f"init '{init}' is unknown; use {', '.join(INITS)}.")
        if cas.net is None or cas.in_channels is None:
            raise InvalidModelError("the cas model is not fitted; train a cas model first.")
        tuned = cls.build(
            num_classes=num_classes,
            in_channels=cas.in_channels,
            width=cas.width,
            depth=cas.depth,
            embed_dim=cas.embed_dim,
            init=init,
            **kwargs,
        )
        assert tuned.net is not None
        if init == "random":
            return tuned
        if init == "cas":
            source = {k: v.detach().cpu() for k, v in cas.net.state_dict().items()}
        elif cas.autoencoder_state is None:
            raise InvalidModelError(
                "the cas model has no phase-1 autoencoder weights (keep_autoencoder was off); "
                "start from init 'cas' or 'random'."
            )
        else:
            source = cas.autoencoder_state
        # Everything but the reconstruction head transfers; the classification head is new.
        body = {k: v for k, v in source.items() if not k.startswith("head.")}
        missing, unexpected = tuned.net.load_state_dict(body, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise InvalidModelError(f"cas weights do not fit the UNet ({missing}, {unexpected}).")
        tuned.net.zero_skip_weights()
        return tuned

    # -- Segmenter interface ---------------------------------------------------------------

    @property
    def halo(self) -> int:
        """Half the UNet's receptive field, in multiples of the bottleneck stride."""
        return local_halo(receptive_field(self.depth, decoder=True), 1 << self.depth)

    def network(self) -> dict[str, Any]:
        """The UNet, by name and config (see :mod:`lcmap.nets`)."""
        return network_record("unet", **self.cfg.unet_config(self._in_channels, self._k))

    def header(self) -> dict[str, Any]:
        """Extra header facts."""
        return {
            "architecture": self.cfg.architecture,
            "init": self.init,
        }

    def state_dict(self) -> dict[str, Tensor]:
        """``net.*``: the UNet's tensors."""
        net = self._fitted()
        return {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore tensors written by :meth:`state_dict`."""
        if self.net is None:
            raise KeyError("the config has no in_channels, so the network cannot be rebuilt")
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.net.to(self.device)

    def to(self, device: torch.device) -> "CasFinetunedSegmenter":
        """Move the network to ``device``."""
        super().to(device)
        if self.net is not None:
            self.net.to(device)
        return self

    def predict(self, batch: Tensor) -> Tensor:
        """(B, C, H, W) normalised bands -> (B, K, H, W) softmax class probabilities."""
        net = self._fitted()
        net.eval()
        x, h, w = pad_to_multiple(batch.float(), net.stride)
        _, logits = net(x, use_skips=True)
        return torch.softmax(logits[:, :, :h, :w].float(), dim=1)

    # -- training --------------------------------------------------------------------------

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Draw ``train_patches`` labelled windows from ``sampler`` and train on them."""
        channels = int(sampler.in_channels)
        if self._in_channels is not None and channels != self._in_channels:
            raise InvalidSceneError(
                f"the scenes have {channels} bands but this model was built for "
                f"{self._in_channels}; pass bands= to pick {self._in_channels}."
            )
        batch = sampler.sample(self.train_patches, self.patch_size)
        patches = LabelledPatches.of(batch, self.info.name, "or use 'lcmap finetune'")
        if self.net is None:
            self._in_channels = channels
            self.net = self._new_net(channels)
        self.train_on(patches, progress)

    def train_on(self, patches: LabelledPatches, progress: ProgressFn | None = None) -> list[float]:
        """Fine-tune on labelled patches held in memory.

        Args:
            patches: the patches and their labels.
            progress: (done, total) callback, one tick per step.

        Returns:
            The loss of every step.

        Raises:
            InvalidSceneError: no labelled pixel, or a label outside 0..K-1 (and not 255).
        """
        if self.net is None:
            self._in_channels = int(patches.image.shape[1])
            self.net = self._new_net(self._in_channels)
        net = self.net.to(self.device)
        schedule = Schedule.of(self.cfg, self.cfg.lr)
        return train_classifier(
            lambda x: net(x, use_skips=True)[1],
            net.parameters(),
            net.train,
            patches,
            self._k,
            schedule,
            self._augment,
            self.device,
            progress,
        )

    def _augment(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per-patch random crop (``crop_size``) and one of the 8 square symmetries."""
        size = self.crop_size
        xs, ys = [], []
        for xi, yi in zip(x, y, strict=True):
            if size is not None and size < xi.shape[-1]:
                r = int(torch.randint(0, xi.shape[-2] - size + 1, (1,), generator=gen))
                c = int(torch.randint(0, xi.shape[-1] - size + 1, (1,), generator=gen))
                xi, yi = xi[:, r : r + size, c : c + size], yi[r : r + size, c : c + size]
            xi, yi = random_dihedral(xi, yi, generator=gen)
            xs.append(xi)
            ys.append(yi)
        xb, _, _ = pad_to_multiple(torch.stack(xs), 1 << self.depth)
        yb = torch.stack(ys)
        h, w = yb.shape[-2:]
        if xb.shape[-2:] != (h, w):
            yb = F.pad(yb, (0, xb.shape[-1] - w, 0, xb.shape[-2] - h), value=IGNORE_INDEX)
        return xb.contiguous(), yb.contiguous()

    def _new_net(self, channels: int) -> UNet:
        net = build_net("unet", **self.cfg.unet_config(channels, self._k))
        assert isinstance(net, UNet)
        return net

    def _fitted(self) -> UNet:
        if self.net is None:
            raise RuntimeError("cas_finetuned must be trained (or loaded) before it is used")
        return self.net


__all__ = ["INITS", "CasFinetunedConfig", "CasFinetunedSegmenter", "class_weights"]
