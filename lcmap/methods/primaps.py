"""PriMaPs-EM on a frozen ViT: ``dino_kmeans``' prototypes refined on principal mask proposals.

Hahn et al., "Boosting Unsupervised Semantic Segmentation with Principal Mask Proposals"
(TMLR 2024): cosine k-means on the frozen backbone's patch features gives the starting class
prototypes; each window drawn for the fit is decomposed into principal mask proposals (regions
its features call one thing) and the prototypes are fitted to them by a stochastic EM with a
momentum teacher (:mod:`lcmap.methods._primaps`, where lcmap's departures from the paper are
listed with their reasons). On Potsdam-3 the paper reports 80.5 accuracy / 67.0 mIoU with DINO
ViT-B/8 against 77.0 / 62.6 for STEGO.

Everything else is ``dino_kmeans``' (:mod:`lcmap.methods.dino_kmeans`): the same windows drawn
across the scenes with the Hann weight, the same mapping (the prototypes' cosine scores
upsampled bilinearly, Hann-blended windows on a grid anchored to the scene, so the map does
not depend on ``--tile``), the same model file with the prototypes as its centroids. Features
only: the bands (``spectral_weight``) are ``dino_kmeans``' option, not this one's, as in the
paper.
"""

import logging

import torch

from lcmap.errors import InvalidOptionError
from lcmap.methods._primaps import EmSchedule, fit_prototypes, principal_masks
from lcmap.methods.base import MethodInfo, ProgressFn, WindowSampler
from lcmap.methods.configs import PrimapsConfig
from lcmap.methods.dino_kmeans import DinoKMeansSegmenter
from lcmap.tiling import window_weights

log = logging.getLogger(__name__)


class PrimapsSegmenter(DinoKMeansSegmenter):
    """PriMaPs-EM prototypes on frozen ViT features; see the module docstring.

    Args:
        config: the options (:class:`~lcmap.methods.configs.PrimapsConfig`).
    """

    info = MethodInfo(
        name="primaps",
        summary="PriMaPs-EM: frozen DINO/DINOv2 ViT features, prototypes fitted to mask "
        "proposals (no labels).",
        needs_fit=True,
        apply_options=DinoKMeansSegmenter.info.apply_options,
        rgb_first=True,
    )

    def __init__(self, config: PrimapsConfig | None = None) -> None:
        cfg = config or PrimapsConfig()
        if cfg.spectral_weight:
            raise InvalidOptionError(
                "primaps fits its prototypes on the ViT features alone: spectral_weight must be "
                "0 (the bands next to the features are a dino_kmeans option)."
            )
        super().__init__(cfg)
        self.em: PrimapsConfig = cfg

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Cosine k-means on pixels of windows drawn across the scenes, then PriMaPs-EM on
        the same windows' patch features."""
        cfg = self.em
        total = cfg.crops + cfg.em_steps + 1
        data, windows = self._draw(sampler, progress, total, keep=True)
        self._kmeans(data)
        assert self.centroids is not None
        feats = torch.cat([f for f, _ in windows])
        masks = torch.stack(
            [
                principal_masks(f.float(), cfg.mask_threshold, valid=v)
                for f, v in zip(feats, torch.cat([v for _, v in windows]), strict=True)
            ]
        )
        side = feats.shape[-1]

        def report(step: int) -> None:
            if progress is not None:
                progress(cfg.crops + step, total)

        d = self.vit.dim  # the centroids are (K, D + C): the band part is 0 here
        prototypes = fit_prototypes(
            feats,
            masks,
            self.centroids[:, :d].cpu(),
            weight=torch.from_numpy(window_weights(side)),
            schedule=EmSchedule(
                cfg.em_steps, cfg.em_batch, cfg.em_lr, cfg.ema_decay, cfg.ema_every, cfg.focal_gamma
            ),
            generator=torch.Generator().manual_seed(cfg.seed),
            progress=report,
        )
        # Renumber by decreasing share of the fit's patches, as the k-means clusters are.
        flat = feats.float().permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        sizes = torch.bincount((flat @ prototypes.T).argmax(1), minlength=self.num_classes)
        order = torch.argsort(sizes, descending=True, stable=True)
        bands = torch.zeros(self.num_classes, self.centroids.shape[1] - d)
        self.centroids = torch.cat([prototypes[order], bands], dim=1).to(self.device)
        log.info(
            "primaps: %.1f masks per window on average, %d EM steps",
            float(masks.amax((1, 2)).float().mean()),
            cfg.em_steps,
        )
        if progress is not None:
            progress(total, total)
