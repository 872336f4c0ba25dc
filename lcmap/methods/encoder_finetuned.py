"""A UNet on a named encoder fine-tuned on a few labelled patches (Temple and Ghandali et al.).

The network is :class:`~lcmap.nets.encoder_unet.EncoderUNet` (ResNet-UNet, Swin-UNet or the
CAS UNet's contracting path). Its contracting path starts from a ``simclr`` model's pre-trained
encoder (``init="simclr"``, via ``lcmap finetune ENCODER.lcmap``) or at random
(``init="random"``, the baseline rows of both seeds); the head is always learnt from the labels.

- ``head="linear"``: no decoder, a 1x1 layer on the encoder's embedding (linear evaluation,
  as SimCLR's and STEGO's probes); its learning rate defaults to 1e-2, the value of lcmap's
  STEGO probe (a linear layer on unit-norm features needs larger steps than a decoder).
  ``head="linear-bands"``: the same layer reading the window's bands too, each band averaged
  over the embedding's 4 x 4 cells and put beside the embedding. A pixel classifier's features
  next to the learnt ones, as hypercolumns keep the early layers (Hariharan et al., CVPR
  2015): what a class's colour tells is there even where an encoder's pre-training left it
  out. ``head="linear-indices"``: also every pair of those bands' normalised difference
  ``(a - b) / (a + b)``, the form of NDVI and NDWI: a linear layer cannot form a ratio, and a
  ratio keeps a class's colour when its brightness changes (dark vegetation against dark
  water). ``head="linear-texture"`` (the default): also each band's standard deviation over
  the cell and over the 3 x 3 cells around it, the local variance of remote-sensing texture
  measures (:func:`~lcmap.nets.encoder_unet.local_std`): a linear layer on means cannot form
  a variance, and still water is smooth where vegetation or a roof of its colour is not.
  ``head="decoder"``: Temple's convolutional UNet decoder (learning rate 1e-3).
- ``freeze_encoder`` (the default): the encoder stays as pre-trained (Temple's "Frozen"
  rows; no gradient reaches it and its BatchNorm statistics stay), so with the linear head the
  labels train K x D weights alone.

The defaults are the best of these measured on held-out patches (``benchmarks/README.md``). Loss:
class-weighted cross-entropy (Ghandali et al.), label 255 ignored
(:mod:`lcmap.methods._supervised`).

Patches are trained on as random ``crop_size`` crops (reflection-padded up to it, labels padded
unlabelled) under one of the 8 symmetries of the square. Mapping uses the same fixed windows as
the encoder's model, Hann-blended, so the map does not depend on ``--tile``; predictions are
softmax class probabilities. ``tta`` (off by default; ``lcmap segment --model TUNED -p
tta=true`` turns it on for a tuned model) averages them over the window's 8 symmetries, the ones
the head was trained under (test-time augmentation), at 8 network passes a window (5.1 times the
mapping time measured on a 2-core CPU).
"""

import hashlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.methods._encoder import EncoderSegmenter
from lcmap.methods._sliding import mirror_pad
from lcmap.methods._supervised import IGNORE_INDEX, Schedule, train_classifier
from lcmap.methods.base import LabelledPatches, MethodInfo, ProgressFn, WindowSampler
from lcmap.methods.configs import EncoderFinetunedConfig
from lcmap.nets.encoder_unet import EncoderUNet
from lcmap.nets.unet import dihedral_mean, random_dihedral

#: Whether a frozen encoder's features are memoised while the head trains (:class:`FrozenFeatures`).
MEMOISE = True


class EncoderFinetunedSegmenter(EncoderSegmenter):
    """An encoder UNet trained on labelled patches; real classes.

    Args:
        config: :class:`~lcmap.methods.configs.EncoderFinetunedConfig`.
    """

    info = MethodInfo(
        name="encoder_finetuned",
        summary="UNet on a pre-trained (or random) encoder, tuned on a few labelled patches.",
        apply_options=frozenset({"window_stride", "tta"}),
        start_options=frozenset({"weights"}),
    )

    def __init__(self, config: EncoderFinetunedConfig | None = None) -> None:
        cfg = config or EncoderFinetunedConfig()
        super().__init__(cfg)
        if cfg.in_channels is not None:
            self._build(cfg.in_channels)

    def _net_config(self) -> dict[str, Any]:
        return {
            **super()._net_config(),
            "out_channels": self.cfg.num_classes,
            "decoder_width": self.cfg.decoder_width,
            "head": self.cfg.head,
        }

    def load_encoder(self, state: dict[str, Tensor]) -> None:
        """Start the contracting path from another network's ``encoder.*`` tensors."""
        net = self._fitted()
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(k.startswith("encoder.") for k in missing):
            raise ValueError(f"encoder weights do not fit ({missing[:3]}, {unexpected[:3]})")

    # -- Segmenter interface -------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """How the encoder started and whether it was trained."""
        return {
            "init": self.cfg.init,
            "freeze_encoder": self.cfg.freeze_encoder,
            "head": self.cfg.head,
        }

    def state_dict(self) -> dict[str, Tensor]:
        """``net.*``: the network's tensors."""
        return {f"net.{k}": v.detach().cpu() for k, v in self._fitted().state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore tensors written by :meth:`state_dict`."""
        net = self._fitted()
        net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        net.to(self.device)

    def predict(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) windows -> (B, K, S, S) softmax class probabilities."""
        net = self._fitted()
        net.eval()

        def probabilities(x: Tensor) -> Tensor:
            return torch.softmax(net(x.float()).float(), dim=1)

        return dihedral_mean(probabilities, batch) if self.cfg.tta else probabilities(batch)

    # -- training --------------------------------------------------------------------------

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Draw ``train_patches`` labelled windows from ``sampler`` and train on them."""
        batch = sampler.sample(self.cfg.train_patches, self._window.size)
        patches = LabelledPatches.of(batch, self.info.name, "or fine-tune a simclr model")
        if self.net is None:
            self._build(int(sampler.in_channels))
        self.train_on(patches, progress)

    def train_on(self, patches: LabelledPatches, progress: ProgressFn | None = None) -> list[float]:
        """Fine-tune on (N, C, S, S) patches and (N, S, S) labels (255 = unlabelled)."""
        if self.net is None:
            self._build(int(patches.image.shape[1]))
        net = self._fitted().to(self.device)
        frozen = self.cfg.freeze_encoder
        for p in net.encoder.parameters():
            p.requires_grad_(not frozen)
        params = [p for p in net.parameters() if p.requires_grad]

        def train_mode(mode: bool) -> None:
            net.train(mode)
            if frozen:
                net.encoder.eval()  # its BatchNorm statistics stay as pre-trained

        cfg = self.cfg
        lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.head == "decoder" else 1e-2)
        schedule = Schedule.of(cfg, lr)
        logits_of: Callable[[Tensor], Tensor] = net
        if frozen and MEMOISE:  # see FrozenFeatures
            memo = FrozenFeatures(net)
            logits_of = lambda x: net(x, memo(x))  # noqa: E731
        return train_classifier(
            logits_of,
            params,
            train_mode,
            patches,
            cfg.num_classes,
            schedule,
            self._augment,
            self.device,
            progress,
        )

    def _augment(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Random ``crop_size`` crops (padded up to it) under one of the 8 symmetries."""
        size = self._window.size
        h, w = x.shape[-2:]
        if h < size or w < size:
            x = mirror_pad(x, max(0, size - h), max(0, size - w))
            y = F.pad(y, (0, max(0, size - w), 0, max(0, size - h)), value=IGNORE_INDEX)
        xs, ys = [], []
        for xi, yi in zip(x, y, strict=True):
            r = int(torch.randint(0, xi.shape[-2] - size + 1, (1,), generator=gen))
            c = int(torch.randint(0, xi.shape[-1] - size + 1, (1,), generator=gen))
            xi, yi = random_dihedral(
                xi[:, r : r + size, c : c + size], yi[r : r + size, c : c + size], generator=gen
            )
            xs.append(xi)
            ys.append(yi)
        return torch.stack(xs).contiguous(), torch.stack(ys).contiguous()


class FrozenFeatures:
    """A frozen encoder's features, each distinct input window encoded once.

    The encoder is frozen and in eval mode, so its features are a function of the window
    alone, and the head's steps see few distinct windows: a patch smaller than the window is
    padded to one window, so it has 8 forms (its symmetries); 20 patches at 300 steps of 8
    send 2,400 windows through the encoder where 160 differ. Windows are known by a hash of
    their values; at most ``max_bytes`` of features are kept (larger patches, whose random
    crops rarely repeat, are then encoded as before).

    Used for every frozen encoder: with the linear head factored (it never builds the
    hypercolumn) the encoder's pass is most of a step for each of them, so the memo saves most
    of the training time (``benchmarks/finetune_speed.py``).

    Args:
        net: the network whose (frozen) encoder is memoised.
        max_bytes: features kept at most.
    """

    def __init__(self, net: EncoderUNet, max_bytes: int = 512 * 2**20) -> None:
        self.net = net
        self.max_bytes = max_bytes
        self.kept: dict[bytes, list[Tensor]] = {}
        self.size = 0

    def __call__(self, x: Tensor) -> list[Tensor]:
        """(B, C, S, S) windows -> the encoder's feature maps, as ``net.features(x)``."""
        keys = [
            hashlib.blake2b(w.detach().cpu().numpy().tobytes(), digest_size=16).digest() for w in x
        ]
        missing = list(dict.fromkeys(k for k in keys if k not in self.kept))
        fresh: dict[bytes, list[Tensor]] = {}
        if missing:
            with torch.no_grad():
                maps = self.net.features(x[[keys.index(k) for k in missing]])
            for j, key in enumerate(missing):
                fresh[key] = [f[j : j + 1].clone() for f in maps]
                size = sum(f.numel() * f.element_size() for f in fresh[key])
                if self.size + size <= self.max_bytes:
                    self.kept[key] = fresh[key]
                    self.size += size
        found = [fresh[k] if k in fresh else self.kept[k] for k in keys]
        return [torch.cat(parts) for parts in zip(*found, strict=True)]


__all__ = ["EncoderFinetunedConfig", "EncoderFinetunedSegmenter"]
