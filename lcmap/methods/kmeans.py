"""Spectral k-means baseline: per-pixel features, k-means fitted once per scene.

Features are the bands, each stretched linearly between its 2nd and 98th percentiles and not
clipped, optionally with their local mean over a ``(2 * smooth + 1)``-pixel square (a little
spatial context that removes salt-and-pepper noise at the cost of a ``smooth``-pixel halo).
The stretch weighs the bands alike whatever their units; the clip that the networks' input
gets would merge every pixel beyond a band's percentiles (the darkest water, the brightest
roofs) into one value. Clusters are fitted once on pixels sampled across the whole scene with
scikit-learn's ``KMeans`` (Lloyd's algorithm, k-means++ starts, the best of four: what a
textbook k-means does; the sample is small enough that mini-batches save nothing worth their
worse clusters), so a label means the same thing in every tile and in every scene mapped with
the saved model (which stores the stretch). Clusters are numbered by increasing
brightness (mean of the normalised bands), so ids are stable under re-fitting with the same
seed and roughly ordered dark (water, shadow) to bright (bare soil, roofs).

Scoring on the CPU of a large run (:data:`COMPILE_MIN_PIXELS` or more) goes through
``torch.compile`` when a C++ compiler is found: the local mean, subtractions, squares, additions and
running minimum, fused into one pass over the pixels instead of one pass per operation, and the
same bits (``tests/methods/test_kmeans.py``). ``$LCMAP_COMPILE`` = 1 or 0 forces it on or off;
if compiling fails the eager code maps (one log line says why).
"""

import logging
import os
import shutil
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lcmap.errors import InvalidOptionError
from lcmap.methods.base import BandFittedSegmenter, MethodInfo, ProgressFn, WindowSampler
from lcmap.methods.configs import KMeansConfig

log = logging.getLogger(__name__)

#: A CPU mapping run over at least this many pixels (tile windows) compiles the scoring kernel.
#: Compiling costs seconds (more the first time on a machine; torch caches the kernel), which
#: only a large scene pays back (``benchmarks/kmeans_kernel.py``).
COMPILE_MIN_PIXELS = 500_000_000


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2 * radius + 1)``-pixel square around each pixel of (B, C, H, W).

    Separable sums of shifted slices, added in a fixed order: every pixel gets bit-identical
    results whatever the tile's shape, and it runs much faster than ``avg_pool2d`` with
    stride 1 on a CPU. Edges are padded by replication; the engine's halo keeps them out of
    the map.
    """
    size = 2 * radius + 1
    if size == 1:
        return x.clone()
    h, w = x.shape[-2:]
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    # The first sum makes a new tensor: no copy of the first slice (the same additions, in
    # the same order, as copying it and adding the others).
    rows = padded[..., 0:h, :] + padded[..., 1 : 1 + h, :]
    for i in range(2, size):
        rows += padded[..., i : i + h, :]
    out = rows[..., 0:w] + rows[..., 1 : 1 + w]
    for j in range(2, size):
        out += rows[..., j : j + w]
    return out.div_(size * size)


def feature_planes(x: Tensor, smooth: int) -> list[Tensor]:
    """The (B, H, W) feature planes of bands ``x`` in :meth:`KMeansSegmenter.features`' order
    (bands, then their local means), without concatenating them (a copy that cost as much as
    the distances)."""
    return [*x.unbind(1), *(box_mean(x, smooth).unbind(1) if smooth else ())]


def has_cxx_compiler() -> bool:
    """Whether ``torch.compile`` can build CPU kernels here (``$CXX``, c++, g++ or clang++)."""
    return any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "g++", "clang++"))


class KMeansSegmenter(BandFittedSegmenter):
    """k-means on per-pixel spectral (and locally smoothed) features.

    Args:
        config: the options (:class:`KMeansConfig`).
    """

    info = MethodInfo(
        name="kmeans",
        summary="k-means on pixel spectra (+ local mean); fast baseline, no GPU needed.",
        clip_input=False,
    )

    def __init__(self, config: KMeansConfig | None = None) -> None:
        super().__init__()
        cfg = config or KMeansConfig()
        if cfg.samples < cfg.num_classes:
            raise InvalidOptionError(
                f"kmeans option samples={cfg.samples} must be at least num_classes "
                f"({cfg.num_classes})."
            )
        self.cfg = cfg
        self._k = cfg.num_classes
        self.smooth = cfg.smooth
        self.samples = cfg.samples
        self.seed = cfg.seed
        self._in_channels = cfg.in_channels
        self.centroids: Tensor | None = None  # (K, F)
        self._compiled: Callable[..., Tensor] | None = None  # see prepare_mapping

    @property
    def halo(self) -> int:
        """The local-mean radius: the only spatial context a pixel's label depends on."""
        return self.smooth

    def features(self, batch: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, F, H, W) per-pixel features."""
        if self.smooth == 0:
            return batch
        return torch.cat([batch, box_mean(batch, self.smooth)], dim=1)

    def fit(self, sampler: WindowSampler, progress: ProgressFn | None = None) -> None:
        """Fit centroids on pixels sampled across the scene(s)."""
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        self._in_channels = sampler.in_channels
        size = 64 + 2 * self.smooth
        windows = max(8, int(np.ceil(self.samples / (64 * 64 * 0.5))))
        pixels: list[Tensor] = []
        done = 0
        while done < windows:
            n = min(32, windows - done)
            batch = sampler.sample(n, size)
            feats = self.features(batch.image)
            s = self.smooth
            core = feats[:, :, s : size - s, s : size - s]
            valid = batch.valid[:, s : size - s, s : size - s]
            pixels.append(core.permute(0, 2, 3, 1)[valid])
            done += n
            if progress is not None:
                progress(done, windows + 1)
        data = torch.cat(pixels).numpy().astype(np.float64)
        if len(data) < self._k:
            raise ValueError(
                f"only {len(data)} valid pixels were sampled for {self._k} clusters; "
                "the scene is almost all nodata."
            )
        rng = np.random.default_rng(self.seed)
        if len(data) > self.samples:
            data = data[rng.choice(len(data), self.samples, replace=False)]
        # One thread: the problem is small, and OpenMP threads that spin while torch or GDAL
        # hold the cores made the fit many times slower on 2 cores.
        with threadpool_limits(1):
            km = KMeans(n_clusters=self._k, random_state=self.seed, n_init=4).fit(data)
        centres = km.cluster_centers_
        order = np.argsort(centres[:, : self._in_channels].mean(axis=1), kind="stable")
        self.centroids = torch.from_numpy(centres[order].astype(np.float32)).to(self.device)
        log.info("k-means fitted on %d pixels, inertia %.4g", len(data), km.inertia_)
        if progress is not None:
            progress(windows + 1, windows + 1)

    def _distances(self, batch: Tensor) -> Iterator[Tensor]:
        """(B, C, H, W) bands -> per centroid, the (B, H, W) squared distances of each pixel.

        Plane by plane, ``sum_j (f_j - c_kj)^2`` added in feature order: only elementwise
        subtractions, squares and additions, each rounded once, so a pixel's distance is the
        same bits whatever the tile's shape or its place in it (DESIGN.md contract 2; the
        matmul form ``|f|^2 - 2 f.c + |c|^2`` is not, and loses precision). On (H, W) planes
        it needs no pixel-major copy of the features and, for labels, no (K, H, W) stack:
        faster than ``torch.cdist``'s exact mode on a CPU.
        """
        if self.centroids is None:
            raise RuntimeError("k-means must be fitted before predict")
        planes = feature_planes(batch.float(), self.smooth)
        c = self.centroids
        scratch = torch.empty_like(planes[0])
        for k in range(c.shape[0]):
            d = (planes[0] - c[k, 0]).square_()
            for j in range(1, len(planes)):
                torch.sub(planes[j], c[k, j], out=scratch)
                d.add_(scratch.square_())
            yield d

    def prepare_mapping(self, pixels: int) -> None:
        """Compile the scoring kernel for a large CPU run (see the module's docstring)."""
        forced = os.environ.get("LCMAP_COMPILE")
        wanted = pixels >= COMPILE_MIN_PIXELS if forced is None else forced == "1"
        self._compiled = None
        if not wanted or self.device.type != "cpu":
            return
        if not has_cxx_compiler():
            log.info("no C++ compiler found: k-means scores with eager torch")
            return
        self._compiled = torch.compile(nearest_centroid, dynamic=True)

    def predict(self, batch: Tensor) -> Tensor:
        """Scores = minus the squared distance to each centroid."""
        return -torch.stack(list(self._distances(batch)), dim=1)

    def predict_labels(self, batch: Tensor) -> Tensor:
        """The nearest centroid (the lowest id on a tie), by a running minimum over the
        centroids (an argmin across a (B, K, H, W) stack was slower)."""
        if self._compiled is not None and self.centroids is not None:
            x = batch.float()
            try:
                return self._compiled(x, self.smooth, self.centroids)
            except Exception as exc:  # a compiler that fails: the eager code gives the same
                log.info(
                    "compiled k-means scoring failed (%s); eager torch instead",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                self._compiled = None
        planes = self._distances(batch)
        best = next(planes)
        labels = torch.zeros(best.shape, dtype=torch.int64, device=best.device)
        for k, d in enumerate(planes, start=1):
            labels.masked_fill_(d < best, k)
            torch.minimum(best, d, out=best)
        return labels

    def state_dict(self) -> dict[str, Tensor]:
        """The centroids."""
        if self.centroids is None:
            raise RuntimeError("k-means must be fitted before it is saved")
        return {"centroids": self.centroids}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the centroids."""
        centroids = state["centroids"]
        expected = (self._in_channels or 0) * (2 if self.smooth else 1)
        if centroids.shape != (self._k, expected):
            raise ValueError(
                f"centroids have shape {tuple(centroids.shape)}, expected ({self._k}, {expected})"
            )
        self.centroids = centroids.float().to(self.device)

    def to(self, device: torch.device) -> "KMeansSegmenter":
        """Move the centroids."""
        super().to(device)
        if self.centroids is not None:
            self.centroids = self.centroids.to(device)
        return self


def nearest_centroid(x: Tensor, smooth: int, centroids: Tensor) -> Tensor:
    """(B, H, W) nearest centroid of each pixel of bands ``x`` (B, C, H, W) and their local
    means over ``smooth`` px: the operations of :func:`box_mean`,
    :meth:`KMeansSegmenter._distances` and :meth:`KMeansSegmenter.predict_labels` in the same
    order, written so that ``torch.compile`` can fuse them into one pass."""
    planes = feature_planes(x, smooth)
    best = labels = None
    for k in range(centroids.shape[0]):
        d = (planes[0] - centroids[k, 0]).square()
        for j in range(1, len(planes)):
            d = d + (planes[j] - centroids[k, j]).square()
        if best is None or labels is None:
            best, labels = d, torch.zeros(d.shape, dtype=torch.int64, device=d.device)
        else:
            labels = torch.where(d < best, k, labels)
            best = torch.minimum(best, d)
    assert labels is not None
    return labels
