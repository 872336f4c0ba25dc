"""The probes of a STEGO model: the cluster probe (cosine k-means on the head's codes), the
linear probe from labels, and the few-shot encoder protocol
(:class:`~lcmap.methods.fewshot.FewShotEncoder`) that fine-tunes a linear probe on a few
labelled patches. Mixed into :class:`~lcmap.methods.stego.StegoSegmenter`, which holds the
frozen ViT, the head and the options named below.
"""

import copy
import logging
from dataclasses import asdict
from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.errors import InvalidOptionError
from lcmap.methods._cluster import spherical_kmeans
from lcmap.methods._distill import StegoHead
from lcmap.methods.base import LabelledPatches, ProgressFn, training_labels
from lcmap.methods.configs import StegoConfig
from lcmap.methods.fewshot import Assignment
from lcmap.methods.options import make_config
from lcmap.types import UNLABELLED

log = logging.getLogger(__name__)

#: Scores are cosine similarities in [-1, 1]; STEGO's CRF uses softmax(2 * similarity), and
#: the few-shot confidence the same.
CRF_ALPHA = 2.0
#: Codes a probe is fitted on at most (a seeded subset beyond).
MAX_PROBE_SAMPLES = 100_000


class StegoProbes:
    """Probe fitting and the few-shot protocol, on the attributes of a STEGO model."""

    cfg: StegoConfig
    head: StegoHead
    device: torch.device
    _k: int
    dim: int
    crop_size: int
    patch_size: int
    probe_steps: int
    probe_lr: float
    seed: int | None
    centroids: Tensor | None
    linear: tuple[Tensor, Tensor] | None

    def features(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_batch(self, batch: Tensor) -> None:
        raise NotImplementedError

    def _codes(self, feats: Tensor, keep: Tensor) -> Tensor:
        """(M, dim) unit head codes of the training-crop patches where ``keep`` is True."""
        codes = []
        with torch.no_grad():
            for i in range(0, feats.shape[0], 64):
                f = feats[i : i + 64].to(self.device, torch.float32)
                c = F.normalize(self.head(f), dim=1).permute(0, 2, 3, 1)
                codes.append(c[keep[i : i + 64].to(c.device)].cpu())
        return torch.cat(codes)

    def _fit_linear_probe(self, feats: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Logistic regression from unit codes to the K classes on the labelled patches."""
        keep = labels != UNLABELLED
        if not bool(keep.any()):
            raise ValueError(
                "no training crop has labelled pixels; check that the label rasters cover the "
                "scenes (255 = unlabelled) or raise 'crops'."
            )
        weight, bias, _ = self._logistic(self._codes(feats, keep), labels[keep])
        return weight, bias

    def _logistic(self, codes: Tensor, classes: Tensor) -> tuple[Tensor, Tensor, list[float]]:
        """(K, dim) weight, (K,) bias and losses of ``probe_steps`` Adam steps of multinomial
        logistic regression from (M, dim) unit codes to (M,) class ids."""
        x = codes.to(self.device)
        y = classes.long().to(self.device)
        losses: list[float] = []
        weight = torch.zeros(self._k, self.dim, device=self.device, requires_grad=True)
        bias = torch.zeros(self._k, device=self.device, requires_grad=True)
        opt = torch.optim.Adam([weight, bias], lr=self.probe_lr)
        for _ in range(self.probe_steps):
            loss = F.cross_entropy(x @ weight.T + bias, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(float(loss.detach()))
        log.info(
            "stego: linear probe on %d labelled samples, %d classes present, loss %.4f",
            len(y),
            int(torch.unique(y).numel()),
            losses[-1] if losses else float("nan"),
        )
        return weight.detach(), bias.detach(), losses

    def _fit_probe(self, feats: Tensor, valid: Tensor, gen: torch.Generator) -> Tensor:
        """Cosine k-means on the codes of valid training-crop patches -> (K, dim)."""
        x = self._codes(feats, valid >= 0.5)
        if x.shape[0] > MAX_PROBE_SAMPLES:
            x = x[torch.randperm(x.shape[0], generator=gen)[:MAX_PROBE_SAMPLES]]
        return spherical_kmeans(x, self._k, gen).to(self.device)

    # -- few-shot encoder (lcmap.methods.fewshot.FewShotEncoder) ----------------------------

    def fewshot_inits(self) -> dict[str, str]:
        """One start: the frozen ViT and trained head, with a new linear probe on the codes."""
        return {"stego": "frozen ViT and trained head; a linear probe on the codes is trained"}

    def embed_windows(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) windows -> (B, dim) unit mean of the window's unit pixel codes
        (seen as :meth:`train_on` sees a patch)."""
        self._check_batch(batch)
        self.head.eval()
        return F.normalize(self._pixel_codes(batch.float()).mean(dim=(2, 3)), dim=1)

    def assign_windows(self, embeddings: Tensor) -> Assignment:
        """Nearest centroid by cosine; distance = 1 - cosine; confidence = the softmax of the
        scaled cosines the CRF also uses."""
        assert self.centroids is not None
        sims = embeddings.float() @ self.centroids.float().T
        best = sims.max(dim=1)
        confidence = (CRF_ALPHA * sims).softmax(dim=1).max(dim=1).values
        return Assignment(best.indices, 1.0 - best.values, confidence)

    def tuned(self, num_classes: int, init: str, **options: Any) -> Self:
        """This model with a linear probe for ``num_classes`` classes to train (STEGO's
        linear probe, trained here on a few labelled patches instead of a whole label set).

        Takes the options ``steps`` (the probe's Adam steps), ``lr`` and ``seed``; the
        patches' ``patch_size`` is a fact of the data, not an option of the probe.
        """
        if init != "stego":
            raise InvalidOptionError(f"init '{init}' is not offered by a stego model; use stego.")
        options.pop("patch_size", None)
        taken = {"steps": "probe_steps", "lr": "probe_lr", "seed": "seed"}
        refused = sorted(set(options) - set(taken))
        if refused:
            raise InvalidOptionError(
                f"a stego model's linear probe does not take {', '.join(refused)}; "
                f"it takes {', '.join(taken)}."
            )
        fields = {**asdict(self.cfg), "num_classes": num_classes}
        fields.update({taken[k]: v for k, v in options.items()})
        cfg = make_config(StegoConfig, "stego", fields)
        tuned = copy.copy(self)  # shares the frozen ViT and the trained head
        tuned.cfg, tuned._k = cfg, num_classes
        tuned.probe_steps, tuned.probe_lr, tuned.seed = cfg.probe_steps, cfg.probe_lr, cfg.seed
        tuned.centroids, tuned.linear = None, None
        return tuned

    def train_on(self, patches: LabelledPatches, progress: ProgressFn | None = None) -> list[float]:
        """Fit the linear probe on the labelled pixels of patches held in memory.

        The ViT sees each patch as it sees a mapping window: patches smaller than
        ``crop_size`` are reflection-padded to it (the same scale and position-embedding grid
        as in mapping; STEGO's authors fit their probes on the crops the head was trained at).
        Codes are upsampled to pixels as in :meth:`predict`, so the probe learns from every
        labelled pixel (a seeded subset of at most 100,000). The cluster probe becomes the
        unit class means of those codes, so the file stays a complete stego model.
        """
        images = patches.image
        labels, total = training_labels(patches, self._k)
        gen = torch.Generator().manual_seed(self.seed or 0)
        share = min(1.0, MAX_PROBE_SAMPLES / total)
        codes, classes = [], []
        self.head.eval()
        with torch.no_grad():
            for i in range(len(images)):
                y = labels[i]
                pick = (y != UNLABELLED) & (torch.rand(y.shape, generator=gen) < share)
                if bool(pick.any()):
                    c = self._pixel_codes(images[i : i + 1].to(self.device, torch.float32))
                    codes.append(c[0].permute(1, 2, 0)[pick.to(c.device)].cpu())
                    classes.append(y[pick])
                if progress is not None:
                    progress(i + 1, len(images) + 1)
        x, y = torch.cat(codes), torch.cat(classes)
        weight, bias, losses = self._logistic(x, y)
        self.linear = (weight, bias)
        means = torch.zeros(self._k, self.dim).index_add_(0, y, x)
        missing = means.norm(dim=1) == 0  # a class without pixels: its probe weight's direction
        means[missing] = weight.cpu()[missing]
        self.centroids = F.normalize(means, dim=1).to(self.device)
        if progress is not None:
            progress(len(images) + 1, len(images) + 1)
        return losses

    def _pad_to_patch(self, batch: Tensor) -> Tensor:
        h, w = batch.shape[-2:]
        p = self.patch_size
        pad_h, pad_w = (-h) % p, (-w) % p
        if not (pad_h or pad_w):
            return batch
        return F.pad(batch, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > p else "replicate")

    def _pixel_codes(self, batch: Tensor) -> Tensor:
        """(B, C, h, w) patches -> (B, dim, h, w) unit codes, seen in a ``crop_size`` window."""
        h, w = batch.shape[-2:]
        s = self.crop_size
        top, left = max(0, (s - h) // 2), max(0, (s - w) // 2)
        x = batch
        if top or left:
            bottom, right = max(0, s - h - top), max(0, s - w - left)
            mode = "reflect" if min(h, w) > max(top, left, bottom, right) else "replicate"
            x = F.pad(batch, (left, right, top, bottom), mode=mode)
        x = self._pad_to_patch(x)
        codes = self.head(self.features(x)).float()
        codes = F.interpolate(codes, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return F.normalize(codes[..., top : top + h, left : left + w], dim=1)
