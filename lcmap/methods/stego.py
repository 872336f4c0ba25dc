"""STEGO: a frozen self-supervised ViT with a correspondence-distillation head and a cluster probe.

After Hamilton et al., "Unsupervised Semantic Segmentation by Distilling Feature
Correspondences" (ICLR 2022), as used for land cover in "A Self-Supervised Approach to Land
Cover Segmentation" (the land-cover STEGO study: batch 16, Adam, learning rate 1e-4).
Backbones: DINO (Caron et al. 2021, Apache-2.0) and DINOv2 (Oquab et al. 2023, Apache-2.0)
ViTs from timm; weights resolve as described in :mod:`lcmap.nets.vit`. The
backbone weights are *not* stored in the model file: its header records the backbone name,
the weights file and its sha256, and loading resolves the weights again in the same order.

Fitting:

1. Training crops of ``crop_size`` pixels (224, a multiple of 8, 14 and 16, as STEGO) are drawn
   across the scenes: half at random, half as the five crops (corners + centre) of windows twice
   as large (STEGO's "five" crop type). Frozen backbone features of all crops are computed
   once and kept in float16 on the CPU (``crops`` bounds the memory: 320 ViT-S/8 crops take
   190 MB).
2. The ``neighbours`` (7, as STEGO) nearest crops of each crop by the cosine similarity of their
   mean-pooled features are found once.
3. The head (a linear and a 1x1-ReLU-1x1 path summed, projecting to ``dim`` = 70 codes, as
   STEGO's ViT-S configs) is trained with the correspondence-distillation loss: three terms
   (a crop with itself, with a k-NN crop, with random crops of the batch), each
   ``-max(code_corr, 0) * (spatially_centred_feature_corr - shift)`` weighted by lambda, on
   ``feature_samples`` x ``feature_samples`` (11 x 11) random bilinear feature samples, 5
   random-crop permutations. Weights and shifts default to STEGO's Potsdam ViT-S
   configuration (aerial imagery): lambda = 0.67 / 0.25 / 0.63, b = 0.08 / 0.02 / 0.46
   (``src/configs/dataset/potsdam.yaml``). Because the head is pointwise, it is applied to the
   sampled feature vectors rather than to whole maps: exact for the linear path, and far cheaper
   on a CPU. The default 10 epochs (200 steps) keep fitting to minutes on a CPU; STEGO trains for
   thousands of steps, so raise ``epochs`` on a GPU.
4. Cluster probe: spherical (cosine) k-means on the normalised codes of all training crops,
   fitted once, so cluster ids are global; clusters are numbered by decreasing size.
5. Linear probe, only when label rasters come with the scenes (``lcmap train --labels``):
   STEGO's second probe, a linear layer from the normalised codes to the K classes, trained
   with cross-entropy on the labelled patches of the training crops (a patch takes the
   majority label of its pixels; 255 = unlabelled). STEGO trains it with the head on
   upsampled codes; here it is fitted after the head on patch codes, ``probe_steps``
   full-batch Adam steps, which is logistic regression and needs no GPU. The model then maps
   class ids (the label values) instead of clusters; the cluster probe is kept in the file.

Prediction: the ViT only ever sees windows of ``crop_size`` pixels, the size the head and
probes were fitted at, so training and mapping share one scale, one normalisation and one
position-embedding grid (224 px: 28 x 28 patches of ViT-S/8, 16 x 16 of ViT-S/14). Windows lie
every ``window_stride`` pixels (half a window by default: four windows over every pixel away
from the scene's edge) on a grid anchored to the scene, and their scores are blended with a
Hann weight (:meth:`~lcmap.methods.base.Segmenter.predict_tiles`), so the map does not depend
on ``--tile`` and window borders leave no seam. Before this, the ViT saw the whole read window
(``--tile`` + 2 x 64 px): attention context and the interpolated position-embedding grid
changed with the tile size, and maps at ``--tile 512`` and ``1024`` agreed on 29% of a NAIP
scene. Per window: backbone features -> head codes -> bilinear upsampling to pixels -> cosine
similarity to the centroids = (B, K, H, W) scores (with a linear probe: its softmax); with
``crf=True`` a windowed mean-field CRF (:mod:`lcmap.methods._crf`) turns them into refined
probabilities, per window before blending.

Nothing is normalised per window: the backbone's final norm is a LayerNorm per token; the head
has no batch statistics (its dropout is off at prediction); the cosine probe normalises each
pixel's code alone; the CLS and register tokens are attended to but dropped from the features;
the feature centring of the loss (STEGO's spatially centred correlations) is used only in
training. What a window still shares is the ViT's attention over its own content, which is
why the window is fixed and blended.

The CRF is off by default: it multiplies the mapping time and barely moved the scores
(``benchmarks/README.md``); ``-p crf=true`` is the cost/quality choice STEGO's paper offers.

Scenes with other than 3 bands: the patch embedding is adapted (bands 1-3 are R, G, B, further
bands get the mean RGB filter, see :func:`lcmap.nets.vit.adapt_input_channels`); pass
``--bands`` to choose or reorder bands.
"""

import logging
import math
from dataclasses import asdict, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.errors import InvalidSceneError
from lcmap.methods._crf import dense_crf
from lcmap.methods._distill import StegoHead, distillation_loss
from lcmap.methods._frozen_vit import FrozenViT, FrozenViTWindows
from lcmap.methods._stego_probes import CRF_ALPHA, StegoProbes
from lcmap.methods.base import (
    MethodInfo,
    ProgressFn,
    Segmenter,
    WindowSampler,
)
from lcmap.methods.configs import _LOSS_DEFAULTS, StegoConfig
from lcmap.nets import network_record
from lcmap.nets import vit as _vit
from lcmap.nets.upsample import upsampled_cosine
from lcmap.types import UNLABELLED, show_status

log = logging.getLogger(__name__)


class StegoSegmenter(StegoProbes, FrozenViTWindows, Segmenter):
    """STEGO on a frozen timm ViT; see the module docstring for the method.

    Args:
        config: the options (:class:`~lcmap.methods.configs.StegoConfig`, each with its
            reason; ``lcmap methods stego --options`` lists them). ``seed`` None is drawn
            from torch's global generator at fit (which the API seeds with ``--seed``) and
            recorded in :meth:`config`.
    """

    info = MethodInfo(
        name="stego",
        summary="STEGO: frozen DINO/DINOv2 ViT + correspondence-distilled head + cosine k-means.",
        needs_fit=True,
        apply_options=frozenset({"crf", "crf_iterations", "weights", "window_stride"}),
        rgb_first=True,
    )

    def __init__(self, config: StegoConfig | None = None) -> None:
        super().__init__()
        cfg = config or StegoConfig()
        self.cfg = cfg
        self._k, self.dim, self.crops, self.epochs = cfg.num_classes, cfg.dim, cfg.crops, cfg.epochs
        self.steps, self.batch_size, self.lr = cfg.steps, cfg.batch_size, cfg.lr
        self.neighbours, self.feature_samples = cfg.neighbours, cfg.feature_samples
        self.neg_samples, self.dropout = cfg.neg_samples, cfg.dropout
        self.probe_steps, self.probe_lr = cfg.probe_steps, cfg.probe_lr
        self.crf, self.crf_iterations = cfg.crf, cfg.crf_iterations
        self.feature_batch, self.seed = cfg.feature_batch, cfg.seed
        self.loss_params = {k: float(getattr(cfg, k)) for k in _LOSS_DEFAULTS}
        self.backbone_args = dict(cfg.backbone_args or {})
        backbone, feature_layer = cfg.backbone, cfg.feature_layer

        self.vit = FrozenViT(
            "stego",
            backbone,
            cfg.weights,
            cfg.weights_sha256,
            feature_layer,
            self.backbone_args,
            cfg.crop_size,
        )
        self.backbone, self.backbone_name = self.vit.net, self.vit.name
        self.resolved, self.feature_layer = self.vit.resolved, self.vit.feature_layer
        self.patch_size, self.crop_size = self.vit.patch_size, self.vit.crop_size
        self._window = self.vit.window(cfg.window_stride)

        if cfg.in_channels is not None:
            self.vit.set_in_channels(cfg.in_channels)
        self.head = StegoHead(self.vit.dim, self.dim)
        self.head.reset_parameters(torch.Generator().manual_seed(self.seed or 0))
        self.centroids: Tensor | None = None
        # Linear probe (K, dim) weight and (K,) bias, only when fitted with labels.
        self.linear: tuple[Tensor, Tensor] | None = None

    # -- Segmenter interface -------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of clusters K."""
        return self._k

    def config(self) -> dict[str, Any]:
        """The options (:class:`StegoConfig`) as resolved: the backbone's full name, the
        weights file and its sha256, the feature block, the crop size, the window stride,
        and the seed drawn at fit."""
        loss: dict[str, Any] = dict(self.loss_params)
        return asdict(
            replace(
                self.cfg,
                backbone=self.backbone_name,
                weights=self.vit.weights_path(),
                weights_sha256=self.resolved.sha256,
                feature_layer=self.feature_layer,
                backbone_args=self.backbone_args,
                in_channels=self.vit.in_channels,
                crop_size=self.crop_size,
                window_stride=self._window.stride,
                seed=self.seed,
                **loss,
            )
        )

    def network(self) -> dict[str, Any]:
        """The frozen ViT, by name and config (see :mod:`lcmap.nets`); its weights are not in
        the model file but found again from the recorded file name and sha256."""
        return network_record(
            "vit",
            backbone=self.backbone_name,
            backbone_args=self.backbone_args,
            feature_layer=self.feature_layer,
        )

    def header(self) -> dict[str, Any]:
        """Backbone facts for the model header."""
        return self.vit.header()

    def state_dict(self) -> dict[str, Tensor]:
        """Head weights and centroids; the backbone is resolved again on load."""
        if self.centroids is None:
            raise RuntimeError("stego has not been fitted: nothing to save.")
        state = {f"head.{k}": v.detach().cpu() for k, v in self.head.state_dict().items()}
        state["centroids"] = self.centroids.detach().cpu()
        if self.linear is not None:
            state["linear.weight"] = self.linear[0].detach().cpu()
            state["linear.bias"] = self.linear[1].detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore head weights and centroids."""
        centroids = state["centroids"]
        if tuple(centroids.shape) != (self._k, self.dim):
            raise ValueError(
                f"centroids have shape {tuple(centroids.shape)}, expected ({self._k}, {self.dim})"
            )
        head = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
        self.head.load_state_dict(head, strict=True)
        self.centroids = centroids.float().to(self.device)
        self.linear = None
        if "linear.weight" in state:
            weight, bias = state["linear.weight"], state["linear.bias"]
            if tuple(weight.shape) != (self._k, self.dim) or tuple(bias.shape) != (self._k,):
                raise ValueError(
                    f"linear probe has shape {tuple(weight.shape)}, "
                    f"expected ({self._k}, {self.dim})"
                )
            self.linear = (weight.float().to(self.device), bias.float().to(self.device))

    def to(self, device: torch.device) -> "StegoSegmenter":
        """Move backbone, head and centroids to ``device``."""
        self.device = torch.device(device)
        self.vit.to(self.device)
        self.head.to(self.device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(self.device)
        if self.linear is not None:
            self.linear = (self.linear[0].to(self.device), self.linear[1].to(self.device))
        return self

    # -- features ------------------------------------------------------------------------

    def features(self, images: Tensor) -> Tensor:
        """Frozen backbone features (:meth:`FrozenViT.features`): (B, D, H / patch, W / patch)."""
        return self.vit.features(images)

    def _check_batch(self, batch: Tensor) -> None:
        if self.vit.in_channels is None or self.centroids is None:
            raise RuntimeError("stego must be fitted (or loaded) before predict().")
        if batch.shape[1] != self.vit.in_channels:
            raise InvalidSceneError(
                f"The tiles have {batch.shape[1]} bands but this stego model expects "
                f"{self.vit.in_channels}; pass bands= to pick {self.vit.in_channels}."
            )

    def predict(self, batch: Tensor) -> Tensor:
        """Cosine similarity of each pixel's upsampled code to the K centroids.

        Args:
            batch: (B, C, H, W) normalised bands; padded internally (reflection) to a patch
                multiple when needed.

        Returns:
            (B, K, H, W) float32 scores in [-1, 1], or CRF marginals in [0, 1] with ``crf``.
        """
        with _vit.exact_scores(batch.device):
            return self._predict(batch)

    def _predict(self, batch: Tensor) -> Tensor:
        self._check_batch(batch)
        assert self.centroids is not None
        h, w = batch.shape[-2:]
        x = self._pad_to_patch(batch)
        self.head.eval()
        codes = self.head(self.features(x)).float()
        # The codes upsampled to pixels and normalised, dotted with the probe's vectors, as
        # STEGO evaluates; computed without the (B, dim, H, W) tensor (see lcmap.nets.upsample).
        size = (x.shape[-2], x.shape[-1])
        if self.linear is not None:
            logits = upsampled_cosine(codes, self.linear[0].float(), size)[..., :h, :w]
            logits = logits + self.linear[1].float()[None, :, None, None]
            scores = logits.softmax(dim=1)
        else:
            scores = upsampled_cosine(codes, self.centroids.float(), size)[..., :h, :w]
            logits = CRF_ALPHA * scores
        if self.crf:
            scores = dense_crf(self._guide(batch), logits, iterations=self.crf_iterations)
        return scores.float()

    def _guide(self, batch: Tensor) -> Tensor:
        """(B, 3, H, W) guidance image for the CRF: the RGB bands (grey repeated)."""
        c = batch.shape[1]
        return batch[:, :3] if c >= 3 else batch[:, :1].expand(-1, 3, -1, -1)

    # -- training ------------------------------------------------------------------------

    def _sample_crops(
        self, sampler: WindowSampler, progress: ProgressFn | None, total: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Draw the training crops and compute their frozen features, chunk by chunk.

        Returns:
            (N, D, h, w) float16 CPU features, (N, h, w) valid fraction of each patch,
            (N, D) unit mean-pooled features of the valid patches (for the k-NN), and the
            (N, h, w) majority label of each patch when the sampler has labels (else None).
        """
        s = self.crop_size
        # STEGO's "five" crops: corners and centre of windows twice the crop size.
        corners = [(0, 0), (0, s), (s, 0), (s, s), (s // 2, s // 2)]
        n_windows = (self.crops // 2) // 5
        per_chunk = max(1, self.feature_batch // 5)
        chunks = [("five", min(per_chunk, n_windows - i)) for i in range(0, n_windows, per_chunk)]
        n_random = self.crops - 5 * n_windows
        chunks += [
            ("random", min(self.feature_batch, n_random - i))
            for i in range(0, n_random, self.feature_batch)
        ]
        feats: list[Tensor] = []
        valid: list[Tensor] = []
        pooled: list[Tensor] = []
        patch_labels: list[Tensor] = []
        done = 0
        for kind, count in chunks:
            if kind == "five":
                sample = sampler.sample(count, 2 * s)
                images = torch.cat([sample.image[:, :, r : r + s, c : c + s] for r, c in corners])
                masks = torch.cat([sample.valid[:, r : r + s, c : c + s] for r, c in corners])
                labels = (
                    torch.cat([sample.labels[:, r : r + s, c : c + s] for r, c in corners])
                    if sample.labels is not None
                    else None
                )
            else:
                sample = sampler.sample(count, s)
                images, masks, labels = sample.image, sample.valid, sample.labels
            if labels is not None:
                patch_labels.append(self._patch_labels(labels))
            f = self.features(images.to(self.device, torch.float32)).float()
            frac = F.adaptive_avg_pool2d(masks[:, None].float(), (f.shape[2], f.shape[3]))[:, 0]
            weight = (frac >= 0.5).float().to(f.device)[:, None] + 1e-6
            pooled.append(F.normalize((f * weight).sum((2, 3)) / weight.sum((2, 3)), dim=1).cpu())
            feats.append(f.to("cpu", torch.float16))
            valid.append(frac.cpu())
            done += images.shape[0]
            if progress is not None:
                progress(done, total)
        found = torch.cat(patch_labels) if patch_labels else None
        return torch.cat(feats), torch.cat(valid), torch.cat(pooled), found

    def _patch_labels(self, labels: Tensor) -> Tensor:
        """(N, s, s) pixel labels -> (N, h, w) uint8 majority of each patch's labelled pixels.

        Unlabelled pixels (255) do not vote; a patch without a labelled pixel gets 255.
        """
        bad = labels[(labels != UNLABELLED) & ((labels < 0) | (labels >= self._k))]
        if bad.numel():
            raise ValueError(
                f"label value {int(bad[0])} is not a class id below {self._k}; pass -k with "
                "the number of classes in the labels (255 marks unlabelled pixels)."
            )
        ids = torch.where(labels == UNLABELLED, self._k, labels).long()
        votes = F.avg_pool2d(
            F.one_hot(ids, self._k + 1).permute(0, 3, 1, 2).float(), self.patch_size
        )
        best = votes[:, : self._k].argmax(dim=1)
        return torch.where(votes[:, : self._k].sum(1) > 0, best, UNLABELLED).to(torch.uint8)

    def _nearest_neighbours(self, pooled: Tensor) -> Tensor:
        """(N, k) indices of each crop's most similar other crops by global feature."""
        sims = pooled @ pooled.T
        sims.fill_diagonal_(-float("inf"))
        k = min(self.neighbours, pooled.shape[0] - 1)
        return sims.topk(k, dim=1).indices

    def loss_from_features(
        self, feats: Tensor, feats_knn: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        """The correspondence-distillation loss of a batch (see :func:`distillation_loss`)."""
        return distillation_loss(
            self.head,
            feats,
            feats_knn,
            generator,
            self.loss_params,
            feature_samples=self.feature_samples,
            neg_samples=self.neg_samples,
            dropout=self.dropout,
        )

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Train the head on crops across the scenes, then fit the cluster probe."""
        self.vit.set_in_channels(int(sampler.in_channels))
        n = self.crops
        batch = min(self.batch_size, n)
        steps = self.steps if self.steps is not None else self.epochs * math.ceil(n / batch)
        total = n + steps + 1
        feats, valid, pooled, labels = self._sample_crops(sampler, progress, total)
        knn = self._nearest_neighbours(pooled)
        log.info(
            "stego: %d crops of %d px, features %s (%.0f MB), %d head steps",
            n,
            self.crop_size,
            tuple(feats.shape[1:]),
            feats.numel() * 2 / 1e6,
            steps,
        )
        if self.seed is None:
            self.seed = int(torch.randint(2**31 - 1, (1,)))
        gen = torch.Generator().manual_seed(self.seed)
        self._train_head(feats, knn, steps, gen, progress, total)
        self.centroids = self._fit_probe(feats, valid, gen)
        self.linear = self._fit_linear_probe(feats, labels) if labels is not None else None
        if progress is not None:
            progress(total, total)

    def _train_head(
        self,
        feats: Tensor,
        knn: Tensor,
        steps: int,
        gen: torch.Generator,
        progress: ProgressFn | None = None,
        total: int = 0,
    ) -> None:
        """Re-initialise and train the head for ``steps`` Adam steps on cached features."""
        n = feats.shape[0]
        batch = min(self.batch_size, n)
        self.head.to(torch.device("cpu"))  # the CPU generator draws the initial weights
        self.head.reset_parameters(gen)
        self.head.to(self.device).train()
        opt = torch.optim.Adam(self.head.parameters(), lr=self.lr)
        order = torch.randperm(n, generator=gen)
        pos = 0
        for step in range(steps):
            if pos + batch > n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + batch]
            pos += batch
            pick = torch.randint(knn.shape[1], (batch,), generator=gen)
            f = feats[idx].to(self.device, torch.float32)
            fk = feats[knn[idx, pick]].to(self.device, torch.float32)
            loss, parts = self.loss_from_features(f, fk, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if step % 100 == 0 or step == steps - 1:
                log.debug(
                    "stego step %d/%d loss %.4f %s", step + 1, steps, float(loss.detach()), parts
                )
            if progress is not None:
                progress(n + step + 1, total)
                if step % 10 == 0 or step == steps - 1:
                    show_status(progress, f"loss {float(loss.detach()):.4f}")
        self.head.eval()
