"""CAS: clustering-augmented self-supervised pre-training (Ghosh et al., Ghosh et al. 2021).

A UNet encoder-decoder over all bands is trained on patches drawn across the scenes, without
labels, in two phases (paper section 4.1):

1. **Autoencoder** (eq. 3): the UNet *without* skip connections reconstructs its input patch
   (masked MSE over valid pixels). Without skips everything must pass the bottleneck, so the
   bottleneck embedding has to describe the patch. Then k-means on the patch embeddings gives
   K initial centroids (eq. 4).
2. **Clustering** (eqs. 5-8, DEC of Xie et al. 2016 plus reconstruction): Student-t soft
   assignment ``q`` of each patch embedding to the centroids (alpha = 1), a sharpened target
   ``p``, and the loss ``KL(P || Q) + lambda * MSE`` updating encoder, decoder and centroids.
   EM style: the E step draws a pool of patches and fixes ``p`` on it with the current model;
   ``update_interval`` M steps then fit minibatches of that pool to the fixed target.

Eq. 5 as printed lacks the minus sign of the exponent; we use DEC's kernel
``q_ij ∝ (1 + |z_i - mu_j|^2 / alpha) ** (-(alpha + 1) / 2)``.

**Patch embedding.** The embedding of a patch is the spatial mean of the bottleneck map (a
``embed_dim``-vector; the bottleneck has stride ``2**depth``). A mean, rather than the flattened
map, makes the embedding nearly translation invariant, which is what lets it slide.

**Pixel map from patch clusters.** :meth:`CasSegmenter.predict` slides the patch embedding
densely: the encoder runs once over the whole tile, the bottleneck map is averaged over a
``patch_size``-pixel square around every bottleneck cell (``avg_pool2d``, stride 1, an odd
kernel so it is centred), the Student-t assignment ``q`` to the K centroids is computed per cell,
and ``q`` is upsampled bilinearly to pixels. So a pixel's scores are the soft cluster assignment
of the patch centred on it, approximately (the encoder sees the tile's context instead of a
patch cut out of it). The map is therefore smooth at the scale of a bottleneck cell (16 px by
default): it shows the patch-level land-cover modes the clustering found; fine boundaries come
from the fine-tuned model (:mod:`lcmap.methods.cas_finetuned`). Cluster ids are the centroid
indexes, fitted once per model, so they are global across tiles and scenes.

**Stitching.** In eval mode (BatchNorm with its running statistics) a pixel's score depends
on a finite neighbourhood only: the encoder's receptive field (140 px at depth 4), the
``patch_size`` pooling of bottleneck cells and the bilinear upsampling
(:func:`~lcmap.nets.unet.receptive_field`). The halo covers half of that, in multiples of
the bottleneck stride, and tiles are multiples of the stride, so every tile shares the scene's
pooling grid and crop-centre stitching gives the map of whole-scene inference, whatever the
tile size (it used to blend tiles with a 64 px overlap, which left the map depending on
``--tile``).
"""

import logging
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcmap.errors import InvalidOptionError, InvalidSceneError
from lcmap.methods.base import BandFittedSegmenter, MethodInfo, ProgressFn, Segmenter, WindowSampler
from lcmap.methods.configs import CasConfig, UNetOptions
from lcmap.methods.fewshot import Assignment
from lcmap.nets import build_net, network_record
from lcmap.nets.unet import (
    UNet,
    local_halo,
    pad_to_multiple,
    random_dihedral,
    receptive_field,
)
from lcmap.types import show_status

log = logging.getLogger(__name__)


def soft_assignment(z: Tensor, centroids: Tensor, alpha: float = 1.0) -> Tensor:
    """Student-t soft assignment of embeddings to centroids (eq. 5, DEC).

    Args:
        z: (N, D) embeddings.
        centroids: (K, D) cluster centres.
        alpha: degrees of freedom of the Student-t kernel (1 in the paper).

    Returns:
        (N, K) assignment probabilities; rows sum to 1.
    """
    dist2 = torch.cdist(z.float(), centroids.float()).pow(2)
    logits = -(alpha + 1.0) / 2.0 * torch.log1p(dist2 / alpha)
    return torch.softmax(logits, dim=1)


def target_distribution(q: Tensor) -> Tensor:
    """Sharpened target ``p`` of a batch of soft assignments (eq. 6).

    ``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')`` with cluster frequencies
    ``f_j = sum_i q_ij``: squaring emphasises confident assignments, dividing by ``f_j`` keeps
    large clusters from swallowing the others.

    Args:
        q: (N, K) soft assignments.

    Returns:
        (N, K) target assignments; rows sum to 1.
    """
    weight = q.pow(2) / q.sum(dim=0, keepdim=True).clamp_min(1e-12)
    return weight / weight.sum(dim=1, keepdim=True)


def clustering_loss(p: Tensor, q: Tensor) -> Tensor:
    """``KL(P || Q)`` averaged over samples (eq. 7): ``mean_i sum_j p_ij log(p_ij / q_ij)``."""
    kl = torch.xlogy(p, p) - p * torch.log(q.clamp_min(1e-12))
    return kl.sum(dim=1).mean()


def masked_mse(reconstruction: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error over valid pixels and all bands (eq. 3).

    Args:
        reconstruction: (B, C, H, W).
        target: (B, C, H, W).
        valid: (B, H, W) bool.
    """
    mask = valid[:, None].to(reconstruction.dtype)
    sq = (reconstruction - target).pow(2) * mask
    return sq.sum() / (mask.sum() * reconstruction.shape[1]).clamp_min(1.0)


class CasSegmenter(BandFittedSegmenter):
    """CAS pre-training (autoencoder, then DEC + reconstruction) and its patch-cluster map.

    Args:
        num_classes: number of clusters K.
        in_channels: band count; None until :meth:`fit` reads it from the sampler.
        width: UNet channels at full resolution (level ``i`` has ``width * 2**i``).
        depth: number of 2x poolings (bottleneck stride ``2**depth``).
        embed_dim: channels of the bottleneck embedding that is clustered.
        patch_size: side in pixels of the training patches (a multiple of ``2**depth``).
        batch_size: patches per optimiser step.
        ae_steps: phase-1 (autoencoder) optimiser steps.
        dec_steps: phase-2 (clustering + reconstruction) optimiser steps.
        epochs: if given, each phase runs this many epochs instead, an epoch being as many
            patches as cover the sampler's valid pixels once (overrides the two step counts).
        lr: Adam learning rate of both phases.
        recon_weight: lambda of eq. 8, weight of the reconstruction term in phase 2. The paper
            gives no value; with bands normalised to 0..1 the KL term is ~0.1 and the MSE
            ~0.02, so 10 balances them; with 1 the clustering dominated and the map was worse
            (``benchmarks/quality_cas.py``).
        update_interval: phase-2 steps between refreshes of the target ``p`` (the E step).
        pool_size: patches drawn at each E step; ``p`` is normalised over this pool.
        kmeans_patches: patches embedded to initialise the centroids with k-means.
        alpha: Student-t degrees of freedom (1 in the paper).
        keep_autoencoder: also keep the phase-1 weights in the model file (for
            ``lcmap finetune --init autoencoder``).
        seed: seeds augmentation, pools and k-means.
    """

    info = MethodInfo(
        name="cas",
        summary="UNet autoencoder + DEC patch clustering (CAS); pre-training for few-shot tuning.",
        size_multiple=16,
    )

    def __init__(self, config: CasConfig | None = None) -> None:
        super().__init__()
        cfg = config or CasConfig()
        self.cfg = cfg
        self._k = cfg.num_classes
        self._in_channels = cfg.in_channels
        self.width, self.depth, self.embed_dim = cfg.width, cfg.depth, cfg.embed_dim
        self.patch_size, self.batch_size = cfg.patch_size, cfg.batch_size
        self.ae_steps, self.dec_steps, self.epochs = cfg.ae_steps, cfg.dec_steps, cfg.epochs
        self.lr, self.recon_weight = cfg.lr, cfg.recon_weight
        self.update_interval, self.pool_size = cfg.update_interval, cfg.pool_size
        self.kmeans_patches, self.alpha = cfg.kmeans_patches, cfg.alpha
        self.keep_autoencoder, self.seed = cfg.keep_autoencoder, cfg.seed
        if self.kmeans_patches < self._k:
            raise InvalidOptionError(
                f"cas option kmeans_patches={self.kmeans_patches} must be at least num_classes "
                f"({self._k})."
            )
        stride = 1 << self.depth
        if self.patch_size < stride or self.patch_size % stride:
            raise InvalidOptionError(
                f"cas option patch_size={self.patch_size} is invalid; expected a multiple of "
                f"{stride} (2**depth)."
            )
        self.net: UNet | None = None
        self.centroids: Tensor | None = None  # (K, embed_dim)
        #: Phase-1 weights (CPU copies), the AutoEncoder initialisation of fine-tuning.
        self.autoencoder_state: dict[str, Tensor] | None = None
        if self._in_channels is not None:
            self.net = self._new_net(self._in_channels)

    # -- Segmenter interface ---------------------------------------------------------------

    @property
    def halo(self) -> int:
        """Half the receptive field of a score, in bottleneck strides (see the module doc)."""
        stride = 1 << self.depth
        cells = max(1, self.patch_size // stride) | 1
        # Encoder, pooling over `cells` cells, then bilinear upsampling (one more cell).
        field = receptive_field(self.depth, decoder=False) + cells * stride
        return local_halo(field, stride)

    def network(self) -> dict[str, Any]:
        """The UNet, by name and config (see :mod:`lcmap.nets`)."""
        return network_record("unet", **self.cfg.unet_config(self._in_channels, self._in_channels))

    def header(self) -> dict[str, Any]:
        """Extra header facts: the architecture, and whether phase-1 weights are included."""
        return {
            "architecture": self.cfg.architecture,
            "has_autoencoder": self.autoencoder_state is not None,
        }

    def state_dict(self) -> dict[str, Tensor]:
        """``net.*`` (phase-2 UNet), ``centroids`` and, if kept, ``ae.*`` (phase-1 UNet)."""
        net, centroids = self._fitted()
        state = {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()}
        state["centroids"] = centroids.detach().cpu()
        if self.autoencoder_state is not None and self.keep_autoencoder:
            state.update({f"ae.{k}": v for k, v in self.autoencoder_state.items()})
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore tensors written by :meth:`state_dict`."""
        if self.net is None:
            raise KeyError("the config has no in_channels, so the network cannot be rebuilt")
        self.net.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
        centroids = state["centroids"]
        if tuple(centroids.shape) != (self._k, self.embed_dim):
            raise ValueError(
                f"centroids have shape {tuple(centroids.shape)}, expected ({self._k}, "
                f"{self.embed_dim})"
            )
        self.centroids = centroids.float().to(self.device)
        ae = {k[3:]: v for k, v in state.items() if k.startswith("ae.")}
        self.autoencoder_state = ae or None
        self.net.to(self.device)

    def to(self, device: torch.device) -> "CasSegmenter":
        """Move the network and centroids to ``device``."""
        super().to(device)
        if self.net is not None:
            self.net.to(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(device)
        return self

    # -- inference -------------------------------------------------------------------------

    def patch_embeddings(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) normalised patches -> (B, embed_dim) patch embeddings (eval mode)."""
        if self.net is None:
            raise RuntimeError("cas must be fitted (or loaded) before it is used")
        net = self.net
        net.eval()
        x, _, _ = pad_to_multiple(batch.float(), net.stride)
        z, _ = net.encode(x)
        return z.float().mean(dim=(2, 3))

    def assign(self, embeddings: Tensor) -> Tensor:
        """(N, embed_dim) embeddings -> (N, K) Student-t soft assignment to the centroids."""
        _, centroids = self._fitted()
        return soft_assignment(embeddings, centroids, self.alpha)

    # -- few-shot encoder (lcmap.methods.fewshot.FewShotEncoder) ----------------------------

    def fewshot_inits(self) -> dict[str, str]:
        """The paper's three starting points (Ghosh et al., Table 4), those this file holds."""
        inits = {"cas": "encoder and decoder after DEC clustering (phase 2)"}
        if self.autoencoder_state is not None:
            inits["autoencoder"] = "the phase-1 autoencoder"
        inits["random"] = "the same UNet from scratch (the paper's OnlyLabeled)"
        return inits

    def embed_windows(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) windows -> (B, embed_dim): :meth:`patch_embeddings`."""
        return self.patch_embeddings(batch)

    def assign_windows(self, embeddings: Tensor) -> Assignment:
        """Nearest centroid by the Student-t assignment q; distance in embedding units."""
        _, centroids = self._fitted()
        q = self.assign(embeddings)
        cluster = q.argmax(dim=1)
        distance = (embeddings - centroids[cluster]).norm(dim=1)
        return Assignment(cluster, distance, q.max(dim=1).values)

    def tuned(self, num_classes: int, init: str, **options: Any) -> Segmenter:
        """A ``cas_finetuned`` UNet started from ``init`` (see
        :meth:`~lcmap.methods.cas_finetuned.CasFinetunedSegmenter.from_cas`)."""
        from lcmap.methods.cas_finetuned import CasFinetunedSegmenter

        return CasFinetunedSegmenter.from_cas(self, num_classes, init=init, **options)

    def predict(self, batch: Tensor) -> Tensor:
        """Soft cluster assignment of the patch centred on each pixel (see the module doc).

        Args:
            batch: (B, C, H, W) normalised bands.

        Returns:
            (B, K, H, W) probabilities q.
        """
        net, centroids = self._fitted()
        net.eval()
        x, h, w = pad_to_multiple(batch.float(), net.stride)
        z, _ = net.encode(x)
        z = z.float()
        cells = max(1, self.patch_size // net.stride) | 1  # odd: centred on each cell
        if cells > 1:
            z = F.avg_pool2d(z, cells, stride=1, padding=cells // 2, count_include_pad=False)
        b, d, zh, zw = z.shape
        q = soft_assignment(z.permute(0, 2, 3, 1).reshape(-1, d), centroids, self.alpha)
        q = q.reshape(b, zh, zw, -1).permute(0, 3, 1, 2)
        q = F.interpolate(q, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return q[:, :, :h, :w].contiguous()

    # -- training --------------------------------------------------------------------------

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Phase 1 (autoencoder), k-means initialisation, phase 2 (DEC + reconstruction)."""
        channels = int(sampler.in_channels)
        if self._in_channels is not None and channels != self._in_channels:
            raise InvalidSceneError(
                f"the scenes have {channels} bands but this cas model was built for "
                f"{self._in_channels}; pass bands= to pick {self._in_channels}."
            )
        self._in_channels = channels
        self.net = self._new_net(channels).to(self.device)
        gen = torch.Generator().manual_seed(self.seed)
        if self.epochs is not None:
            per_epoch = math.ceil(sampler.valid_pixels / self.patch_size**2 / self.batch_size)
            self.ae_steps = self.dec_steps = self.epochs * max(1, per_epoch)
            log.info("cas: %d epochs = %d steps a phase", self.epochs, self.ae_steps)
        total = self.ae_steps + 1 + self.dec_steps
        done = 0

        def tick(status: str | None = None) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)
                if status is not None:
                    show_status(progress, status)

        self._train_autoencoder(sampler, gen, tick)
        state = self.net.state_dict()
        self.autoencoder_state = {k: v.detach().cpu().clone() for k, v in state.items()}
        self.centroids = self._init_centroids(sampler)
        tick()
        self._train_clustering(sampler, gen, tick)

    def _new_net(self, channels: int) -> UNet:
        net = build_net("unet", **self.cfg.unet_config(channels, channels))
        assert isinstance(net, UNet)
        return net

    def _fitted(self) -> tuple[UNet, Tensor]:
        if self.net is None or self.centroids is None:
            raise RuntimeError("cas must be fitted (or loaded) before it is used")
        return self.net, self.centroids

    def _batch(self, sampler: WindowSampler, count: int) -> tuple[Tensor, Tensor]:
        batch = sampler.sample(count, self.patch_size)
        return batch.image.float().to(self.device), batch.valid.to(self.device)

    def _train_autoencoder(self, sampler: WindowSampler, gen: torch.Generator, tick: Any) -> None:
        assert self.net is not None
        net = self.net
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        net.train()
        running = math.nan
        for step in range(self.ae_steps):
            x, valid = self._batch(sampler, self.batch_size)
            x, valid = random_dihedral(x, valid, generator=gen)
            _, rec = net(x, use_skips=False)
            loss = masked_mse(rec, x, valid)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            running = loss.item() if math.isnan(running) else 0.9 * running + 0.1 * loss.item()
            if step % 50 == 0 or step == self.ae_steps - 1:
                log.info(
                    "cas phase 1 step %d/%d: reconstruction MSE %.5f",
                    step + 1,
                    self.ae_steps,
                    running,
                )
            tick(f"phase 1 MSE {running:.5f}" if step % 10 == 0 else None)

    @torch.no_grad()
    def _embed(self, images: Tensor) -> Tensor:
        """Patch embeddings of many patches, in eval mode, batch by batch."""
        out = [
            self.patch_embeddings(images[i : i + 4 * self.batch_size])
            for i in range(0, len(images), 4 * self.batch_size)
        ]
        return torch.cat(out)

    def _init_centroids(self, sampler: WindowSampler) -> Tensor:
        """k-means on the embeddings of ``kmeans_patches`` patches (eq. 4)."""
        from sklearn.cluster import KMeans

        chunks = []
        left = self.kmeans_patches
        while left > 0:
            n = min(left, 64)
            x, _ = self._batch(sampler, n)
            chunks.append(self._embed(x).cpu())
            left -= n
        emb = torch.cat(chunks).double().numpy()
        km = KMeans(n_clusters=self._k, n_init=10, random_state=self.seed).fit(emb)
        sizes = np.bincount(km.labels_, minlength=self._k)
        log.info("cas k-means on %d patch embeddings: cluster sizes %s", len(emb), sizes.tolist())
        return torch.from_numpy(km.cluster_centers_.astype(np.float32)).to(self.device)

    def _train_clustering(self, sampler: WindowSampler, gen: torch.Generator, tick: Any) -> None:
        assert self.net is not None and self.centroids is not None
        net = self.net
        centroids = nn.Parameter(self.centroids.clone())
        opt = torch.optim.Adam([*net.parameters(), centroids], lr=self.lr)
        pool_x = pool_valid = target = None
        for step in range(self.dec_steps):
            if step % self.update_interval == 0:
                # E step: fix the target on a fresh pool with the current model.
                self.centroids = centroids.detach()
                pool_x, pool_valid = self._batch(sampler, self.pool_size)
                with torch.no_grad():
                    q = self.assign(self._embed(pool_x))
                target = target_distribution(q)
                log.debug(
                    "cas E step %d: cluster sizes %s",
                    step,
                    torch.bincount(q.argmax(dim=1), minlength=self._k).tolist(),
                )
            assert pool_x is not None and pool_valid is not None and target is not None
            # M step: minibatches of the pool against the fixed target.
            net.train()
            idx = torch.randperm(len(pool_x), generator=gen)[: self.batch_size].to(self.device)
            x, valid = pool_x[idx], pool_valid[idx]
            z, rec = net(x, use_skips=False)
            q = soft_assignment(z.float().mean(dim=(2, 3)), centroids, self.alpha)
            kl = clustering_loss(target[idx], q)
            mse = masked_mse(rec, x, valid)
            loss = kl + self.recon_weight * mse
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if step % 50 == 0 or step == self.dec_steps - 1:
                log.info(
                    "cas phase 2 step %d/%d: KL %.5f, reconstruction MSE %.5f",
                    step + 1,
                    self.dec_steps,
                    kl.item(),
                    mse.item(),
                )
            tick(f"phase 2 KL {kl.item():.5f}" if step % 10 == 0 else None)
        self.centroids = centroids.detach()


__all__ = [
    "CasConfig",
    "CasSegmenter",
    "UNetOptions",
    "clustering_loss",
    "masked_mse",
    "soft_assignment",
    "target_distribution",
]
