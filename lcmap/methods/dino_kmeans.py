"""Cosine k-means on frozen self-supervised ViT features, with the bands as pixel evidence.

No training: windows are drawn across the scenes, a frozen DINO / DINOv2 ViT (weights as in
:mod:`lcmap.nets.vit`) gives one feature per patch, and k-means runs on pixels whose vector is
the unit feature (bilinearly interpolated at the pixel), optionally next to
``spectral_weight`` times the pixel's normalised bands. Clusters are fitted once across all
scenes, so labels are global.

Why: on Potsdam-3, plain cosine k-means on DINOv2 ViT-B/14 patch features scores 82.4
accuracy / 69.9 mIoU, above STEGO's trained head (77.0 / 62.6; Hahn et al., "Boosting
Unsupervised Semantic Segmentation with Principal Mask Proposals" (PriMaPs), CVPR 2024,
baseline rows): the features and how they are clustered matter more than the head. k-means on
unit vectors is cosine k-means, as the paper's baseline.

The bands are an option, off by default. A ViT-S/14 gives one feature per 14 x 14 px (7 m at
0.5 m), and the bands carry boundaries and, with NIR, vegetation at the pixel; but a model's
one normalisation does not make band values of another acquisition comparable, while the
ViT's features are robust to it, so the bands helped within the fitting scenes and hurt on
others (``benchmarks/README.md``). Turn them on (``-p spectral_weight=1``) when the model is
fitted on the scene it maps.

Scores: with a unit feature ``f`` and a centroid ``(c_f, c_s)``, the negative squared
distance is ``2 f.c_f - |c_f|^2 - w^2 |s - c_s|^2`` up to a constant. ``f.c_f`` is linear in
``f``, so it is computed per patch and the K score maps are upsampled (bilinear, the same
interpolation the fit sampled with), not the D-channel features: K / D of the cost. With
``flips`` the patch scores are averaged over the window and its three flips (test-time
augmentation).

Windows as STEGO (:mod:`lcmap.methods.stego`): the ViT sees only ``crop_size`` windows every
``window_stride`` px on a grid anchored to the scene, Hann-blended, so the map does not depend
on ``--tile``.
"""

import logging
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor

from lcmap.errors import InvalidSceneError
from lcmap.methods._frozen_vit import FrozenViT, FrozenViTWindows
from lcmap.methods._sliding import hann_pixels
from lcmap.methods.base import MethodInfo, ProgressFn, Segmenter, WindowSampler
from lcmap.methods.configs import DinoKMeansConfig
from lcmap.nets import network_record
from lcmap.nets import vit as _vit

log = logging.getLogger(__name__)


class DinoKMeansSegmenter(FrozenViTWindows, Segmenter):
    """Cosine k-means on frozen ViT features plus bands; see the module docstring.

    Args:
        config: the options (:class:`~lcmap.methods.configs.DinoKMeansConfig`).
    """

    cfg: DinoKMeansConfig

    info = MethodInfo(
        name="dino_kmeans",
        summary="k-means on frozen DINO/DINOv2 ViT features + bands (no training).",
        needs_fit=True,
        apply_options=frozenset({"weights", "window_stride", "flips"}),
        rgb_first=True,
    )

    def __init__(self, config: DinoKMeansConfig | None = None) -> None:
        super().__init__()
        cfg = config or DinoKMeansConfig()
        self.cfg = cfg
        self.backbone_args = dict(cfg.backbone_args or {})
        self.vit = FrozenViT(
            "dino_kmeans",
            cfg.backbone,
            cfg.weights,
            cfg.weights_sha256,
            cfg.feature_layer,
            self.backbone_args,
            cfg.crop_size,
        )
        self._window = self.vit.window(cfg.window_stride)
        if cfg.in_channels is not None:
            self.vit.set_in_channels(cfg.in_channels)
        self.centroids: Tensor | None = None  # (K, D + C)

    @property
    def num_classes(self) -> int:
        """Number of clusters K."""
        return self.cfg.num_classes

    def config(self) -> dict[str, Any]:
        """The options as resolved (backbone name, weights file and sha256, block, bands)."""
        return asdict(
            replace(
                self.cfg,
                backbone=self.vit.name,
                weights=self.vit.weights_path(),
                weights_sha256=self.vit.resolved.sha256,
                feature_layer=self.vit.feature_layer,
                backbone_args=self.backbone_args,
                in_channels=self.vit.in_channels,
                crop_size=self._window.size,
                window_stride=self._window.stride,
            )
        )

    def network(self) -> dict[str, Any]:
        """The frozen ViT, by name and config (its weights are found again on load)."""
        return network_record(
            "vit",
            backbone=self.vit.name,
            backbone_args=self.backbone_args,
            feature_layer=self.vit.feature_layer,
        )

    def header(self) -> dict[str, Any]:
        """Backbone facts for the model header."""
        return self.vit.header()

    def state_dict(self) -> dict[str, Tensor]:
        """The centroids (the backbone is resolved again on load)."""
        if self.centroids is None:
            raise RuntimeError("dino_kmeans has not been fitted: nothing to save.")
        return {"centroids": self.centroids.detach().cpu().contiguous()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the centroids."""
        centroids = state["centroids"]
        want = (self.num_classes, self.vit.dim + (self.vit.in_channels or 0))
        if tuple(centroids.shape) != want:
            raise ValueError(f"centroids have shape {tuple(centroids.shape)}, expected {want}")
        self.centroids = centroids.float().to(self.device)

    def to(self, device: torch.device) -> "DinoKMeansSegmenter":
        """Move the backbone and the centroids to ``device``."""
        self.device = torch.device(device)
        self.vit.to(self.device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(self.device)
        return self

    # -- fitting -------------------------------------------------------------------------

    def _pixel_vectors(
        self, feats: Tensor, images: Tensor, valid: Tensor, gen: torch.Generator
    ) -> Tensor:
        """(M, D + C) joint vectors of up to ``pixels_per_crop`` valid pixels per window.

        Pixels are drawn with the window's blending weight (Hann, :func:`window_weights`):
        the map of a pixel is made mostly of windows it lies near the centre of, and a ViT's
        features near a window's border differ from those at its centre for the same content
        (on a uniform grey window, DINOv2-S/14 block-8 border patches have cosine 0.82-0.87 to
        the mean feature, central ones 0.96), so fitting on all positions alike lets clusters
        follow the window's border instead of the land cover.

        Args:
            feats: (B, D, h, w) unit patch features of the windows ``images``.
        """
        c = images.shape[1]
        out = []
        for i in range(images.shape[0]):
            drawn = hann_pixels(valid[i], self.cfg.pixels_per_crop, gen)
            if drawn is None:
                continue
            pick, grid = drawn
            f = F.grid_sample(
                feats[i : i + 1],
                grid[None, None].to(feats.device),
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )
            f = F.normalize(f[0, :, 0].T, dim=1)
            bands = images[i].flatten(1)[:, pick].T.to(f.device)
            out.append(torch.cat([f, self.cfg.spectral_weight * bands], dim=1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.vit.dim + c)

    def _draw(
        self, sampler: WindowSampler, progress: ProgressFn | None, total: int, keep: bool
    ) -> tuple[NDArray[np.float64], list[tuple[Tensor, Tensor]]]:
        """Draw ``crops`` windows across the scenes: the pixel vectors for the k-means and,
        with ``keep``, each batch's (B, D, h, w) unit patch features (float16, CPU) with their
        (B, h, w) valid patches (at least half the patch's pixels valid)."""
        self.vit.set_in_channels(int(sampler.in_channels))
        gen = torch.Generator().manual_seed(self.cfg.seed)
        vectors: list[Tensor] = []
        windows: list[tuple[Tensor, Tensor]] = []
        done = 0
        while done < self.cfg.crops:
            n = min(self.cfg.feature_batch, self.cfg.crops - done)
            sample = sampler.sample(n, self._window.size)
            feats = F.normalize(self.vit.features(sample.image.to(self.device)).float(), dim=1)
            vectors.append(self._pixel_vectors(feats, sample.image, sample.valid, gen))
            if keep:
                p = self.vit.patch_size
                patch_valid = F.avg_pool2d(sample.valid[:, None].float(), p)[:, 0] >= 0.5
                windows.append((feats.half().cpu(), patch_valid.cpu()))
            done += n
            if progress is not None:
                progress(done, total)
        data = torch.cat(vectors).numpy().astype(np.float64)
        if len(data) < self.num_classes:
            raise InvalidSceneError(
                f"only {len(data)} valid pixels were sampled for {self.num_classes} clusters; "
                "the scenes are almost all nodata."
            )
        return data, windows

    def _kmeans(self, data: NDArray[np.float64]) -> None:
        """Fit the centroids on the pixel vectors, numbered by decreasing cluster size."""
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # see kmeans.fit: spinning OpenMP threads on 2 cores
            km = KMeans(self.num_classes, n_init=3, random_state=self.cfg.seed).fit(data)
        sizes = np.bincount(km.labels_, minlength=self.num_classes)
        order = np.argsort(-sizes, kind="stable")  # clusters numbered by decreasing size
        self.centroids = torch.from_numpy(km.cluster_centers_[order].astype(np.float32))
        self.centroids = self.centroids.to(self.device)
        log.info(
            "%s: %d pixels from %d windows, block %d, inertia %.4g",
            self.info.name,
            len(data),
            self.cfg.crops,
            self.vit.feature_layer,
            km.inertia_,
        )

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Draw windows across the scenes and fit the clusters on their pixels."""
        total = self.cfg.crops + 1
        data, _ = self._draw(sampler, progress, total, keep=False)
        self._kmeans(data)
        if progress is not None:
            progress(total, total)

    # -- prediction ----------------------------------------------------------------------

    def _dots(self, x: Tensor, cf: Tensor) -> Tensor:
        """(B, K, h, w) cosines of the patch features of ``x`` to the centroids' features."""
        feats = F.normalize(self.vit.features(x).float(), dim=1)
        return torch.einsum("bdhw,kd->bkhw", feats, cf)

    def predict(self, batch: Tensor) -> Tensor:
        """(B, K, H, W) negative squared distances to the centroids (higher = nearer).

        Args:
            batch: (B, C, H, W) normalised bands; padded internally (reflection) to a patch
                multiple when needed.
        """
        with _vit.exact_scores(batch.device):
            return self._predict(batch)

    def _predict(self, batch: Tensor) -> Tensor:
        if self.centroids is None or self.vit.in_channels is None:
            raise RuntimeError("dino_kmeans must be fitted (or loaded) before predict().")
        if batch.shape[1] != self.vit.in_channels:
            raise InvalidSceneError(
                f"The tiles have {batch.shape[1]} bands but this dino_kmeans model expects "
                f"{self.vit.in_channels}; pass bands= to pick {self.vit.in_channels}."
            )
        h, w = batch.shape[-2:]
        p = self.vit.patch_size
        x = batch.float()
        pad_h, pad_w = (-h) % p, (-w) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > p else "replicate")
        d = self.vit.dim
        cf, cs = self.centroids[:, :d], self.centroids[:, d:]  # cs is in weighted units
        dots = self._dots(x, cf)
        if self.cfg.flips:
            # Test-time augmentation: the image's flips see the same ground with other
            # contexts; x is a whole number of patches, so a flipped image's patches are the
            # original ones and its scores flip back onto them exactly. Flips rather than
            # 90-degree turns keep any tile shape.
            for dims in ((-1,), (-2,), (-2, -1)):
                dots = dots + self._dots(x.flip(dims), cf).flip(dims)
            dots = dots / 4
        dots = F.interpolate(dots, size=x.shape[-2:], mode="bilinear", align_corners=False)
        scores = 2 * dots[..., :h, :w] - (cf * cf).sum(1)[None, :, None, None]
        if self.cfg.spectral_weight > 0:
            s = self.cfg.spectral_weight * batch.float()
            # |s - c|^2 = |s|^2 - 2 s.c + |c|^2, without a (B, K, C, H, W) tensor.
            dist = (s * s).sum(1, keepdim=True) - 2 * torch.einsum("bchw,kc->bkhw", s, cs)
            scores = scores - dist - (cs * cs).sum(1)[None, :, None, None]
        return scores
