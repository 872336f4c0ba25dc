"""Single-scene deep clustering: a small CNN trained on the unlabelled scene it maps.

Saha, Mou, Shahzad and Zhu, "Segmentation of VHR EO images using unsupervised learning"
(Saha et al., ``shared/seeds/002_9a82c760a4146b37.txt``). No pretrained weights: the network is
initialised at random and trained on patches of the scene itself (all bands), so the model file
holds everything it needs.

Model (the paper's Table 1): ``layers`` 3x3 convolutions of ``features`` kernels, stride 1, no
pooling, each followed by ReLU then batch normalisation (the paper's order); channel attention as
in CBAM (Woo et al. 2018, the paper's reference [26]): average- and max-pooled descriptors through
one shared MLP, summed, sigmoid; then a 1x1 convolution to K outputs followed by batch
normalisation (the paper applies BN after every convolution; the authors' code does so without a
ReLU on the last one, and the per-channel normalisation keeps one output from dominating).

Training (the paper's Algorithm 1): every epoch draws about ``valid_pixels / crop_size**2``
patches (the number of non-overlapping patches that tile the scene, as the authors' stride =
patch size), in batches of ``batch_size``; each batch gets ``iterations`` updates, each with
fresh pseudo-labels ``argmax_k y`` (eq. 1), cross-entropy to them (eq. 2) plus the contrastive
term: the batch against a copy of itself shuffled afresh at every iteration (Algorithm 1, line
16), ``mean_n exp(-||y_n^b - y_n^b'||_1)`` with the L1 norm over the K outputs (eq. 3, Sec. 3.4).
The shuffle has no fixed points, so every patch meets another one. The paper gives no optimiser,
batch size or initialisation; we take those of the authors' public code for the journal version
(github.com/sudipansaha/singleSceneSemSegTgrs2022, ``trainVaihingen.py``): SGD, learning rate
1e-3, momentum 0.9, batch 8, Kaiming-uniform kernels. Nodata pixels take no part in the loss (the
BN statistics still see them, as zeros).

Receptive field and tiles (DESIGN.md contract 2): the convolutions see ``layers`` pixels on each
side, so ``halo = layers``. Two parts of the network would make a pixel depend on its whole tile:
channel attention pools globally over its input, and batch normalisation in training mode uses
batch statistics. After training, :meth:`SingleSceneSegmenter.fit` therefore (1) recomputes
the BN running
statistics over patches drawn across the scene ("precise BN", a cumulative average) and (2)
freezes the attention to the mean of the per-patch attention vectors over the same patches.
Both are scene-level statistics fitted once (contract 3); at inference BN is in eval mode and the
attention is a fixed per-channel scale, so the network is a pure local operator with a
(2 * layers + 1)-pixel receptive field, and crop-centre stitching with ``halo >= layers`` gives
the same map as inferring the whole scene at once.

Collapse: argmax self-labelling can end with few clusters in use. It has not been seen on the
scenes measured (every model used all K clusters), most likely as the final BN
layer standardises each output channel over the batch, so no channel can win everywhere. After
fitting, :attr:`SingleSceneSegmenter.clusters_used` tells how many clusters the calibration
patches use (in the model header too); two or fewer log a warning.
"""

import logging
import math
from dataclasses import asdict
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.methods.base import MethodInfo, ProgressFn, Segmenter, WindowSampler
from lcmap.methods.configs import SingleSceneConfig
from lcmap.nets import build_net, network_record
from lcmap.nets.single_scene_cnn import SingleSceneNet
from lcmap.types import show_status

log = logging.getLogger(__name__)

# Patches used for the post-training scene statistics (BN statistics, frozen attention) and for
# counting the clusters in use: enough to average over the scene, cheap next to training
# (forward passes only).
_CALIBRATION_PATCHES = 32
# A cluster counts as in use when it labels at least this share of the calibration pixels.
_MIN_CLUSTER_SHARE = 0.001


def _new_net(cfg: SingleSceneConfig, in_channels: int) -> SingleSceneNet:
    net = build_net(
        "single_scene_cnn",
        in_channels=in_channels,
        layers=cfg.layers,
        features=cfg.features,
        reduction=cfg.reduction,
        num_classes=cfg.num_classes,
    )
    assert isinstance(net, SingleSceneNet)
    return net


def clustering_loss(scores: Tensor, valid: Tensor) -> Tensor:
    """Cross-entropy of the scores to their own argmax pseudo-labels (eqs. 1-2), valid pixels.

    Args:
        scores: (B, K, H, W) network outputs.
        valid: (B, H, W) bool, pixels that take part.

    Returns:
        Scalar mean over valid pixels (0 when none is valid).
    """
    pseudo = scores.detach().argmax(dim=1)
    per_pixel = F.cross_entropy(scores, pseudo, reduction="none")
    return _masked_mean(per_pixel, valid)


def contrastive_loss(scores: Tensor, valid: Tensor, permutation: Tensor) -> Tensor:
    """The paper's Sec. 3.4: ``mean_n exp(-||y_n^b - y_n^b'||_1)`` against a shuffled batch.

    Args:
        scores: (B, K, H, W) network outputs y.
        valid: (B, H, W) bool.
        permutation: (B,) indexes b' of the partner of each patch b (no fixed points).

    Returns:
        Scalar mean over pixels valid in both patches of a pair.
    """
    distance = (scores - scores[permutation]).abs().sum(dim=1)  # L1 over the K outputs
    return _masked_mean(torch.exp(-distance), valid & valid[permutation])


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    weight = valid.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def shuffled_partners(batch: int, generator: torch.Generator | None = None) -> Tensor:
    """A random permutation of ``range(batch)`` without fixed points (a random cycle).

    Each patch must meet a *different* patch (the paper: x^b and x^b' are unpaired); a plain
    ``randperm`` would sometimes pair a patch with itself, where the term is a constant.
    """
    order = torch.randperm(batch, generator=generator)
    partners = torch.empty(batch, dtype=torch.long)
    partners[order] = order.roll(-1)
    return partners


class SingleSceneSegmenter(Segmenter):
    """Deep clustering trained on the scene itself (Saha et al.); see the module docstring."""

    info: ClassVar[MethodInfo] = MethodInfo(
        name="single_scene",
        summary="Small CNN + channel attention trained on the scene itself (Saha et al.: argmax "
        "deep clustering + shuffled contrastive loss).",
        size_multiple=1,
        needs_fit=True,
    )

    def __init__(self, config: SingleSceneConfig) -> None:
        super().__init__()
        self.cfg = config
        self.net: SingleSceneNet | None = None
        self._fitted = False
        #: Clusters the calibration patches use after fit() (None before).
        self.clusters_used: int | None = None
        if config.in_channels is not None:
            self.net = _new_net(config, config.in_channels)

    @property
    def num_classes(self) -> int:
        """K, the number of clusters (score channels)."""
        return self.cfg.num_classes

    @property
    def in_channels(self) -> int | None:
        """Bands the network reads; None until fitted or configured."""
        return self.cfg.in_channels

    @property
    def halo(self) -> int:
        """``layers`` pixels: each 3x3 convolution adds one pixel of context per side."""
        return self.cfg.layers

    def network(self) -> dict[str, Any]:
        """The CNN, by name and config (see :mod:`lcmap.nets`)."""
        cfg = self.cfg
        return network_record(
            "single_scene_cnn",
            in_channels=cfg.in_channels,
            layers=cfg.layers,
            features=cfg.features,
            reduction=cfg.reduction,
            num_classes=cfg.num_classes,
        )

    def config(self) -> dict[str, Any]:
        """Builder keyword arguments, including ``in_channels`` once fitted."""
        return asdict(self.cfg)

    def state_dict(self) -> dict[str, Tensor]:
        """The network's parameters and buffers (BN statistics, frozen attention)."""
        net = self._require_net()
        return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore a fitted network (``in_channels`` must be in the config)."""
        net = self._require_net()
        net.load_state_dict(state, strict=True)
        net.to(self.device)
        self._fitted = True

    def to(self, device: torch.device) -> Self:
        """Move the network to ``device``."""
        self.device = torch.device(device)
        if self.net is not None:
            self.net.to(self.device)
        return self

    def _require_net(self) -> SingleSceneNet:
        if self.net is None:
            raise RuntimeError(
                "single_scene has no network yet: call fit() first or build it with in_channels."
            )
        return self.net

    def predict(self, batch: Tensor) -> Tensor:
        """(B, C, H, W) normalised bands -> (B, K, H, W) float32 scores (local operator)."""
        net = self._require_net()
        if not self._fitted:
            raise RuntimeError("single_scene.predict() needs a fitted model; call fit() first.")
        if batch.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"single_scene model expects {self.cfg.in_channels} bands, got {batch.shape[1]}."
            )
        net.eval()
        scores: Tensor = net(batch)
        return scores.float()

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Train on patches of the scene (Algorithm 1), then fit the scene statistics.

        Args:
            sampler: draws normalised windows across the scene(s); its band count sets
                ``in_channels``.
            progress: called with (done, total) after each update and calibration batch.
        """
        if self.cfg.seed is None:
            self._fit(sampler, progress)
            return
        # A private RNG stream: the seed fixes initialisation and shuffles without touching the
        # caller's global state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            self._fit(sampler, progress)

    def _fit(self, sampler: WindowSampler, progress: ProgressFn | None) -> None:
        cfg = self.cfg
        in_channels = int(sampler.in_channels)
        if cfg.in_channels not in (None, in_channels):
            raise ValueError(
                f"single_scene was built for {cfg.in_channels} bands but the scene has "
                f"{in_channels}; drop in_channels or pick bands with bands=..."
            )
        self.cfg = SingleSceneConfig(**{**asdict(cfg), "in_channels": in_channels})
        net = _new_net(self.cfg, in_channels).to(self.device)
        self.net = net
        self._fitted = False

        # B_total: the number of non-overlapping patches that tile the valid part of the scene.
        patches = max(1, math.ceil(int(sampler.valid_pixels) / cfg.crop_size**2))
        batches = math.ceil(patches / cfg.batch_size)
        calibration = max(1, math.ceil(_CALIBRATION_PATCHES / cfg.batch_size))
        total = cfg.epochs * batches * cfg.iterations + calibration
        log.info(
            "single_scene: %d epochs x %d batches (%d patches of %d px) x %d iterations",
            cfg.epochs,
            batches,
            patches,
            cfg.crop_size,
            cfg.iterations,
        )
        optimiser = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        done = 0
        net.train()
        for epoch in range(cfg.epochs):
            for b in range(batches):
                count = min(cfg.batch_size, patches - b * cfg.batch_size)
                sample = sampler.sample(count, cfg.crop_size)
                image = sample.image.to(self.device, torch.float32)
                valid = sample.valid.to(self.device, torch.bool)
                for _ in range(cfg.iterations):
                    optimiser.zero_grad(set_to_none=True)
                    scores = net(image)
                    loss = clustering_loss(scores, valid)
                    if count > 1:
                        # Algorithm 1 line 16: a fresh shuffle at every iteration.
                        partners = shuffled_partners(count).to(self.device)
                        loss = loss + contrastive_loss(scores, valid, partners)
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimiser.step()
                    done += 1
                    if progress is not None:
                        progress(done, total)
                show_status(progress, f"epoch {epoch + 1}/{cfg.epochs} loss {loss.item():.4f}")
                log.debug("epoch %d batch %d: loss %.4f", epoch, b, loss.item())
        self._calibrate(sampler, calibration, done, total, progress)
        self._fitted = True

    @torch.no_grad()
    def _calibrate(
        self,
        sampler: WindowSampler,
        batches: int,
        done: int,
        total: int,
        progress: ProgressFn | None,
    ) -> None:
        """Fit the scene-level BN statistics and attention that make inference tile-free."""
        cfg, net = self.cfg, self._require_net()
        samples = [sampler.sample(cfg.batch_size, cfg.crop_size) for _ in range(batches)]
        images = [s.image.to(self.device, torch.float32) for s in samples]
        # 1. Precise BN: running statistics as the plain average over the calibration patches.
        norms = net.batch_norms()
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative moving average
        net.train()
        for image in images:
            net(image)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        # 2. Freeze the attention to its mean over the patches (with the final BN statistics).
        net.eval()
        weights = torch.cat([net.attention.weights(net.features(image)) for image in images])
        net.attention.scale.copy_(weights.mean(dim=0))
        # 3. Count the clusters in use, to report collapse.
        counts = torch.zeros(cfg.num_classes, dtype=torch.long, device=self.device)
        for image, sample in zip(images, samples, strict=True):
            labels = net(image).argmax(dim=1)[sample.valid.to(self.device)]
            counts += torch.bincount(labels, minlength=cfg.num_classes)
            done += 1
            if progress is not None:
                progress(done, total)
        self._report_clusters(counts.cpu())

    def _report_clusters(self, counts: Tensor) -> None:
        """Record how many clusters label at least 0.1% of the pixels; warn on collapse."""
        k = self.cfg.num_classes
        share = counts.double() / counts.sum().clamp_min(1)
        self.clusters_used = int((share >= _MIN_CLUSTER_SHARE).sum())
        log.info("single_scene: %d of %d clusters in use", self.clusters_used, k)
        if self.clusters_used <= 2 < k:
            log.warning(
                "single_scene collapsed to %d of %d clusters; try another --seed or fewer classes.",
                self.clusters_used,
                k,
            )

    def header(self) -> dict[str, Any]:
        """Facts for the model header: clusters in use after training."""
        return {"clusters_used": self.clusters_used}
