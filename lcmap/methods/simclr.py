"""SimCLR pre-training of an encoder on the user's own scenes, and a map from its features.

Ghandali et al. (SimCLR on unlabelled aerial and satellite data, then fine-tuning with
class-weighted cross-entropy) and Temple (a contracting path pre-trained by contrast, then a
segmentation head trained on few labels, frozen or not):

1. Windows of ``crop_size`` px are drawn across all given scenes (nodata-aware, seeded).
2. Each step takes ``batch_size`` windows and makes two views of each
   (:mod:`lcmap.methods._contrastive`: random resized crop down to 20%, flips and 90-degree
   rotations, blur, brightness/contrast, an illumination ramp, erasing).
3. The encoder (:mod:`lcmap.nets.encoder_unet`: ResNet, Swin-T or the CAS UNet's contracting
   path, N-band stem), global average pooling of its last stage, a 2-layer MLP projection head
   (ReLU, Ghandali et al.) and NT-Xent with ``temperature`` (Ghandali et al.: 0.1 or 0.7) over
   the 2N views.
   Optimiser SGD at 1e-3 (Ghandali et al.; momentum 0.9 as SimCLR's reference code) or Adam
   (Temple's Swin), at a constant rate (Ghandali et al.). A run that ends with its
   projections collapsed (NT-Xent at its chance level, ln(2 batch - 1)) warns
   (:class:`~lcmap.errors.TrainingCollapseWarning`): Swin-T with Adam at 1e-3 does so; Swin's
   recipe scales 1e-3 by batch / 512.
4. A cosine k-means probe with K clusters is fitted on the dense embeddings (the encoder's
   hypercolumn at stride 4, :meth:`EncoderUNet.embed`) of windows drawn across the same
   scenes, pixels drawn with the window's blending weight, so a label means one thing across
   tiles and scenes. ``lcmap segment SCENE --model ENCODER.lcmap`` maps with it.

Mapping: the network sees only ``crop_size`` windows every ``window_stride`` px on a grid
anchored to the scene, Hann-blended (as STEGO's ViT), so the map does not depend on ``--tile``;
BatchNorm runs in eval mode (no batch statistics), so a window's scores depend on that window
alone. Scores are the cosine similarity of each pixel's upsampled embedding to the centroids.

The model is also a few-shot encoder (:mod:`lcmap.methods.fewshot`): ``lcmap finetune
ENCODER.lcmap`` trains an ``encoder_finetuned`` UNet whose contracting path starts from the
pre-trained encoder (``--init simclr``) or at random (``--init random``), frozen or not.
"""

import logging
import math
import warnings
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcmap.errors import InvalidSceneError, TrainingCollapseWarning
from lcmap.methods._cluster import spherical_kmeans
from lcmap.methods._contrastive import augmentations, make_views, nt_xent
from lcmap.methods._encoder import EncoderSegmenter, mean_embedding
from lcmap.methods._sliding import hann_pixels
from lcmap.methods.base import MethodInfo, ProgressFn, Segmenter, WindowSampler
from lcmap.methods.configs import SimclrConfig
from lcmap.methods.fewshot import Assignment
from lcmap.nets import build_net, vit_encoder
from lcmap.nets.catalogue import FIXED_SIZE
from lcmap.nets.encoder_unet import EncoderUNet, encoder_state
from lcmap.nets.vit import resolve_weights
from lcmap.types import show_status

log = logging.getLogger(__name__)
#: Steps after which a loss still at chance level is a collapse, not a start.
COLLAPSE_MIN_STEPS = 50
#: Share of the chance level above which the loss counts as at chance.
CHANCE_SHARE = 0.99

#: Pixels drawn per probe window (Hann-weighted) for the k-means probe.
_PROBE_PIXELS = 64


class SimclrSegmenter(EncoderSegmenter):
    """An encoder pre-trained by contrast on the scenes, mapped by cosine k-means.

    Args:
        config: :class:`~lcmap.methods.configs.SimclrConfig` (see its fields' help).
    """

    info = MethodInfo(
        name="simclr",
        summary="Encoder pre-trained on your scenes by contrast (SimCLR); k-means on its features.",
        apply_options=frozenset({"window_stride"}),
        start_options=frozenset({"weights"}),
    )

    def __init__(self, config: SimclrConfig | None = None) -> None:
        cfg = config or SimclrConfig()
        super().__init__(cfg)
        self.projection: nn.Module | None = None
        self.centroids: Tensor | None = None
        self.final_loss: float | None = None
        #: The partner sensor's encoder (pre-training on pairs), same architecture.
        self.pair_net: EncoderUNet | None = None
        if cfg.in_channels is not None:
            self._build(cfg.in_channels)

    def _build(self, channels: int) -> None:
        super()._build(channels)
        net = self._fitted()
        if self.cfg.pair_channels:
            pair = build_net(
                "encoder_unet", encoder=self.cfg.encoder, in_channels=self.cfg.pair_channels
            )
            assert isinstance(pair, EncoderUNet)
            self.pair_net = pair
        deep, out = net.channels[-1], self.cfg.projection_dim
        self.projection = nn.Sequential(nn.Linear(deep, deep), nn.ReLU(), nn.Linear(deep, out))

    def header(self) -> dict[str, Any]:
        """The augmentations and the final contrastive loss."""
        return {
            "augmentations": augmentations(),
            "final_loss": self.final_loss,
            "objective": "simclr",
        }

    def _modules(self) -> dict[str, nn.Module]:
        """The state's modules by prefix."""
        assert self.net is not None and self.projection is not None
        modules = {"net.": self.net, "projection.": self.projection}
        return modules | ({"pair_net.": self.pair_net} if self.pair_net is not None else {})

    def state_dict(self) -> dict[str, Tensor]:
        """The network (``net.*``), the partner's (``pair_net.*``), the projection head and
        the centroids."""
        state = {
            f"{prefix}{k}": v.detach().cpu()
            for prefix, module in self._modules().items()
            for k, v in module.state_dict().items()
        }
        assert self.centroids is not None
        state["centroids"] = self.centroids.detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` wrote."""
        if self.net is None:
            raise KeyError("the config has no in_channels, so the network cannot be rebuilt")
        for prefix, module in self._modules().items():
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
        centroids = state["centroids"]
        if tuple(centroids.shape) != (self.num_classes, self.net.embed_dim()):
            raise ValueError(f"centroids have shape {tuple(centroids.shape)}")
        self.centroids = centroids.float()
        self.to(self.device)

    def to(self, device: torch.device) -> "SimclrSegmenter":
        """Move the network, heads and centroids to ``device``."""
        super().to(device)
        for module in (self.projection, self.pair_net):
            if module is not None:
                module.to(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(device)
        return self

    def predict(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) windows -> (B, K, S, S) cosine similarity of each pixel's upsampled
        embedding to the centroids."""
        net = self._fitted()
        if batch.shape[1] != self.in_channels:
            raise InvalidSceneError(
                f"The tiles have {batch.shape[1]} bands but this simclr model expects "
                f"{self.in_channels}; pass bands= to pick {self.in_channels}."
            )
        assert self.centroids is not None
        net.eval()
        x = batch.float()
        # einsum(embed(x), centroids), without building the hypercolumn (lcmap.nets.upsample)
        scores = net.hypercolumn_dots(net.features(x), x.shape[-2:], self.centroids.float())
        return F.interpolate(scores, size=batch.shape[-2:], mode="bilinear", align_corners=False)

    # -- pre-training ----------------------------------------------------------------------

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Pre-train the encoder by contrast on windows of the scenes, then fit the probe."""
        split = getattr(sampler, "split", None)  # windows of pairs: the scene's bands first
        if self.net is None:
            if split is not None:
                self.cfg = replace(self.cfg, pair_channels=int(sampler.in_channels) - split)
            if self.cfg.encoder == "dinov2-vits14" and self.cfg.weights is None:
                # Named for its weights: found as the ViT methods find theirs (cache, then
                # hub), or a one-line error naming the file, never a random ViT unasked.
                found = resolve_weights(vit_encoder.ARCH).path
                self.cfg = replace(self.cfg, weights=str(found))
            self._build(split or int(sampler.in_channels))
        cfg = self.cfg
        net = self._fitted()
        self.to(self.device)
        gen = torch.Generator().manual_seed(cfg.seed)
        steps = 0
        if cfg.steps == 0:  # the encoder as initialised (its weights): the probe alone
            log.info("simclr: %s not pre-trained (steps=0); fitting the probe", cfg.encoder)
        else:
            steps = self._pretrain(sampler, gen, progress)
        net.eval()
        if self.pair_net is not None:
            self.pair_net.eval()
        self.centroids = self._fit_probe(sampler, gen, progress, steps, steps + cfg.probe_windows)

    def _pretrain(
        self, sampler: WindowSampler, gen: torch.Generator, progress: ProgressFn | None
    ) -> int:
        """The contrastive steps on windows drawn from ``sampler``; returns how many."""
        cfg = self.cfg
        net = self._fitted()
        pool = sampler.sample(cfg.windows, cfg.crop_size)
        n = len(pool.image)
        batch = min(cfg.batch_size, n)
        per_epoch = max(1, n // batch)
        steps: int = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
        total = steps + cfg.probe_windows
        assert self.projection is not None
        params = [*net.encoder.parameters(), *self.projection.parameters()]
        if self.pair_net is not None:
            params += list(self.pair_net.encoder.parameters())
        opt = (
            torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
            if cfg.optimizer == "sgd"
            else torch.optim.Adam(params, lr=cfg.lr)
        )
        log.info(
            "simclr: %s on %d windows of %d px, %d steps of %d windows",
            cfg.encoder,
            n,
            cfg.crop_size,
            steps,
            batch,
        )
        for module in (net, self.projection, self.pair_net):
            if module is not None:
                module.train()
        order = torch.randperm(n, generator=gen)
        for step in range(steps):
            pos = (step % per_epoch) * batch
            if step and pos == 0:
                order = torch.randperm(n, generator=gen)
            loss, parts = self.contrastive_loss(pool.image[order[pos : pos + batch]], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            self.final_loss = float(loss.detach())
            if step % 20 == 0 or step == steps - 1:
                log.info("simclr step %d/%d: loss %.4f %s", step + 1, steps, self.final_loss, parts)
            if progress is not None:
                progress(step + 1, total)
                show_status(progress, f"loss {self.final_loss:.4f}")
        if steps >= COLLAPSE_MIN_STEPS:
            check_collapse(parts, batch)
        return steps

    def contrastive_loss(
        self, windows: Tensor, gen: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        """The loss of one batch of (N, C, S, S) windows: NT-Xent of the pooled last stage.

        Windows of pairs (``pair_channels``) hold the scene's bands, then the partner's: the
        first view is the scene's, seen by :attr:`net`, the second the partner's, seen by
        :attr:`pair_net`, both projected by the one head into one space (Temple's two
        branches)."""
        net = self._fitted()
        assert self.projection is not None
        views, _ = make_views(windows.to(self.device), self.cfg.min_scale, gen)
        if self.pair_net is None:  # one pass: BatchNorm normalises all 2N views together
            n = views.shape[1]
            last = net.features(torch.cat([views[0], views[1]]))[-1]
            fa, fb = last[:n], last[n:]
        else:
            split = int(self.in_channels or 0)
            fa = net.features(views[0][:, :split])[-1]
            fb = self.pair_net.features(views[1][:, split:])[-1]
        za = self.projection(fa.mean(dim=(2, 3)))
        zb = self.projection(fb.mean(dim=(2, 3)))
        loss = nt_xent(za, zb, self.cfg.temperature)
        return loss, {"global": float(loss.detach())}

    def _fit_probe(
        self,
        sampler: WindowSampler,
        gen: torch.Generator,
        progress: ProgressFn | None,
        done: int,
        total: int,
    ) -> Tensor:
        """Cosine k-means on embeddings of pixels drawn with the window's blending weight."""
        net = self._fitted()
        s = self._window.size
        vectors: list[Tensor] = []
        drawn = 0
        while drawn < self.cfg.probe_windows:
            count = min(16, self.cfg.probe_windows - drawn)
            sample = sampler.sample(count, s)
            image = sample.image[:, : self.in_channels].to(self.device).float()
            with torch.no_grad():
                feats = net.features(image)
            for i in range(count):
                drawn_pixels = hann_pixels(sample.valid[i], _PROBE_PIXELS, gen)
                if drawn_pixels is None:
                    continue
                _, grid = drawn_pixels
                with torch.no_grad():  # the embedding at those pixels only
                    z = net.hypercolumn_at(
                        [f[i : i + 1] for f in feats], image.shape[-2:], grid[None].to(self.device)
                    )
                vectors.append(z[0].cpu())
            drawn += count
            if progress is not None:
                progress(done + drawn, total)
        if not vectors:
            raise InvalidSceneError("no valid pixel in the probe windows; nothing to cluster")
        x = F.normalize(torch.cat(vectors), dim=1)
        log.info("simclr: k-means probe on %d pixels, K = %d", len(x), self.num_classes)
        return spherical_kmeans(x, self.num_classes, gen).to(self.device)

    # -- few-shot encoder (lcmap.methods.fewshot.FewShotEncoder) ----------------------------

    def fewshot_inits(self) -> dict[str, str]:
        """The pre-trained encoder, or the same network from scratch (Temple's baseline)."""
        return {
            "simclr": "the pre-trained encoder; the head learnt from labels",
            "random": "the same network from scratch",
        }

    def embed_windows(self, batch: Tensor) -> Tensor:
        """(B, C, S, S) -> (B, D) unit mean of the window's dense embedding (windows of any
        size, through Swin's fixed ones: :func:`~lcmap.methods._encoder.mean_embedding`)."""
        net = self._fitted()
        net.eval()
        return F.normalize(mean_embedding(net, batch, FIXED_SIZE.get(self.cfg.encoder)), dim=1)

    def assign_windows(self, embeddings: Tensor) -> Assignment:
        """Nearest centroid by cosine; distance = 1 - cosine."""
        assert self.centroids is not None
        sims = embeddings.float() @ self.centroids.float().T
        best = sims.max(dim=1)
        return Assignment(
            best.indices, 1.0 - best.values, (sims / 0.1).softmax(dim=1).max(1).values
        )

    def tuned(self, num_classes: int, init: str, **options: Any) -> Segmenter:
        """An ``encoder_finetuned`` UNet with this model's encoder, bands and window."""
        from lcmap.methods.encoder_finetuned import EncoderFinetunedSegmenter

        options.pop("patch_size", None)  # a fact of the patches, not an option of the net
        net = self._fitted()
        # This model's window, unless the tuning asks for its own (then half of it as stride)
        size = options.pop("crop_size", None)
        window = (self._window.size, self._window.stride) if size is None else (size, None)
        tuned = EncoderFinetunedSegmenter.build(
            num_classes,
            encoder=self.cfg.encoder,
            in_channels=self.in_channels,
            crop_size=window[0],
            window_stride=window[1],
            vit_blocks=options.pop("vit_blocks", self.cfg.vit_blocks),
            init=init,
            **options,
        )
        if init == "simclr":
            tuned.load_encoder(encoder_state(net))
        return tuned


def check_collapse(parts: dict[str, float], batch: int) -> None:
    """Warn when the last step's global loss says the projections collapsed to one point (a
    learning rate too high for the encoder, or windows with nothing to tell apart), so the
    encoder learnt nothing a map or a head could use: NT-Xent at its chance level,
    ln(2 batch - 1)."""
    chance = math.log(2 * batch - 1)
    level = (
        f"loss ended at its chance level ({parts['global']:.3f}, ln(2 x {batch} - 1) = "
        f"{chance:.3f})"
    )
    if parts["global"] >= CHANCE_SHARE * chance:
        warnings.warn(
            f"simclr's {level}: the encoder learnt nothing. "
            "Pre-train again with a lower --lr (swin-unet with adam: about 1e-3 x batch / 512).",
            TrainingCollapseWarning,
            stacklevel=3,
        )


__all__ = ["SimclrConfig", "SimclrSegmenter"]
