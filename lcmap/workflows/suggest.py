"""Active sampling: which patches to label next, from a model's clusters (Ghosh et al., 4.2.2).

The scenes are cut into a grid of ``patch_size`` patches (whole patches inside the scene, at
least half valid). Each patch is embedded with the model's encoder
(:class:`~lcmap.methods.fewshot.FewShotEncoder`) and assigned to a cluster: by default its
nearest centroid of the model (a cas model's DEC clusters, a stego or simclr model's probe:
Ghosh et al.'s rule), or with ``clusters="budget"`` one of ``budget`` clusters drawn afresh from
the patches' embeddings by cosine k-means (TypiClust, Hacohen et al. 2022: one typical patch
per cluster). TypiClust samples the modes in proportion to their size, so on ground whose class
shares differ from the labelled scenes' it misses rare classes, while Ghosh et al.'s even split
over the model's few clusters keeps them in the budget.

The budget is spread evenly over the non-empty clusters (Ghosh et al.). By default
(``pick="diverse"``) a cluster's share of n patches is one typical patch from each of n
sub-clusters of its patches (cosine k-means on their embeddings, the patch nearest each
sub-centroid): TypiClust's rule inside Ghosh et al.'s split, so every mode of the model keeps
its share and the share is not spent on near-copies of one patch. With ``pick="nearest"`` the
share is the n patches *closest to the cluster's centroid* (Ghosh et al.'s own rule). "diverse"
measured better than both "nearest" and TypiClust alone (``benchmarks/README.md``). When the
budget does not divide evenly, the extra patches go to the clusters of highest *uncertainty*:
with a fine-tuned model, the entropy of the predicted majority classes of the cluster's patches
(the paper's rule: a pure cluster needs fewer labels); without one, the largest clusters. A
cluster with fewer patches than its share passes the rest on in the same order.

The result is a GeoDataFrame of patch footprints (polygons in the scenes' CRS) with the scene
name, cluster id, rank within the cluster (1 = closest to the centroid, or with "diverse" the
typical patch of the largest sub-cluster) and a global ``order`` that interleaves the clusters
rank by rank, so the first N rows are a good smaller budget too.
:func:`lcmap.workflows.finetune.finetune` reads the file back with ``patch_file=``.

Example:
    >>> suggest_labels(["a.tif"], "cas.lcmap", "pick.gpkg", patches=PatchSpec(20))  # doctest: +SKIP
"""

import contextlib
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window, bounds

from lcmap.errors import InvalidSceneError, LcmapError
from lcmap.io.scene import open_scene, read_window, resolve_bands
from lcmap.io.stack import with_stack
from lcmap.io.staging import check_output, publish, temp_dir
from lcmap.methods.fewshot import FewShotEncoder, load_encoder
from lcmap.models import ModelHeader
from lcmap.types import ProgressFn
from lcmap.workflows.patch_choice import (
    Patch,
    allocate,
    entropy,
    fresh_clusters,
    in_order,
    recluster,
)
from lcmap.workflows.specs import OutputSpec, PatchSpec, RunSpec

if TYPE_CHECKING:
    import geopandas as gpd
    import torch

    from lcmap.methods.base import Segmenter

log = logging.getLogger(__name__)

#: A patch is a candidate when at least this fraction of it holds data.
MIN_VALID = 0.5
#: Patches per cluster on which the fine-tuned model is run to measure the cluster's entropy.
ENTROPY_SAMPLE = 64


def _grid(width: int, height: int, size: int) -> list[Window]:
    return [
        Window(c, r, size, size)
        for r in range(0, height - size + 1, size)
        for c in range(0, width - size + 1, size)
    ]


def _load_tuned(path: Path, dev: "torch.device") -> tuple["Segmenter", ModelHeader]:
    """A fine-tuned model, on ``dev``."""
    from lcmap.methods.loading import load_model

    seg, header = load_model(path)
    seg.to(dev)
    return seg, header


def suggest_labels(
    scenes: Sequence[str | Path],
    model: str | Path,
    output: "OutputSpec | str | Path | None",
    *,
    patches: PatchSpec,
    tuned: str | Path | None = None,
    stack: Sequence[str | Path] = (),
    clusters: int | Literal["budget", "model"] = "model",
    pick: Literal["nearest", "diverse"] = "diverse",
    run: RunSpec = RunSpec(),
) -> "gpd.GeoDataFrame":
    """Suggest ``patches.count`` patches to label (the budget), spread over a model's clusters.

    Args:
        scenes: scenes to choose from (one CRS).
        model: a model file whose method provides an encoder (cas, stego).
        output: polygon file to write (GPKG by default; the suffix picks the format), or None
            to only return the table.
        patches: the budget (``count``, required) and the patch side in pixels (``size``).
        tuned: an optional fine-tuned model whose predictions decide where the extra patches
            go (entropy of majority classes per cluster).
        stack: co-registered rasters stacked after the (one) scene's bands, as the model was
            trained with them (:mod:`lcmap.io.stack`).
        clusters: ``"model"``: the model's own clusters (Ghosh et al.); ``"budget"``: as many
            as patches, drawn afresh (TypiClust); or a number to draw afresh.
        pick: a cluster's share: ``"diverse"``, one typical patch per sub-cluster;
            ``"nearest"``, those closest to its centroid (Ghosh et al.). See the module doc.
        run: device; seed (the patches sampled for the entropy estimate, the re-clustering);
            patches per forward pass (16 when None); progress over patches.

    Returns:
        The footprints: ``scene``, ``cluster``, ``rank``, ``order``, ``distance`` (to the
        centroid, embedding units), ``confidence`` (the soft assignment q), ``row``, ``col``,
        ``size`` (pixels) and the polygon.

    Raises:
        InvalidModelError: ``model``'s method provides no encoder.
        InvalidSceneError: the scenes have different CRSs, or no patch fits in them.
        OutputExistsError: ``output`` exists and ``overwrite`` is False.
    """
    from lcmap.engine import choose_device

    patch_size, seed, batch_size = patches.size, run.seed, run.batch_size or 16
    budget, fresh, target = _check_request(
        scenes, model, output, patches, stack, tuned, clusters, pick
    )
    dev = choose_device(run.device)
    encoder, header = load_encoder(model)
    encoder.to(dev)
    tuned_model = _load_tuned(Path(tuned), dev) if tuned is not None else None

    with contextlib.ExitStack() as opened:
        inputs = opened.enter_context(with_stack(scenes, stack, header.extra.get("stack")))
        srcs = [opened.enter_context(open_scene(p)) for p in inputs]
        crs = _one_crs(srcs)
        bands = [resolve_bands(s, header.bands) for s in srcs]
        grids = _grids(srcs, patch_size)
        # Embeddings kept (one vector per patch) only where clusters are drawn from them.
        keep = fresh is not None or pick == "diverse"
        norm = header.read_spec().norm
        embedder = _GridEmbedder(encoder, norm, dev, batch_size, fresh is None, keep)
        grid_patches = embedder.patches(srcs, bands, grids, run.progress)
        if not grid_patches:
            raise InvalidSceneError("Every patch is mostly nodata; nothing to suggest.")
        k = encoder.num_classes if fresh is None else recluster(grid_patches, fresh, seed)
        context = (tuned_model, srcs, dev, batch_size)
        priority, alloc = _allocation(grid_patches, k, budget, seed, context)
        ranked = list(in_order(grid_patches, priority, alloc, pick, seed))
        frame = _footprints(ranked, scenes, [s.transform for s in srcs], patch_size, crs)
    log.info(
        "suggested %d patches over %d clusters (per cluster: %s)",
        len(frame),
        int((np.array(alloc) > 0).sum()),
        alloc,
    )
    if target is not None:
        _write(frame, target)
    return frame


def _allocation(
    patches: list[Patch],
    k: int,
    budget: int,
    seed: int,
    context: tuple[tuple["Segmenter", ModelHeader] | None, list[Any], Any, int],
) -> tuple[list[int], list[int]]:
    """The clusters in priority order and each one's share of ``budget`` patches. With a
    fine-tuned model (``context``: the model, the open scenes, the device, the batch size),
    the clusters whose majority classes it predicts with most entropy come first."""
    tuned_model, srcs, dev, batch_size = context
    sizes = np.bincount([p.cluster for p in patches], minlength=k)
    if budget > len(patches):
        log.warning("only %d patches exist; suggesting all of them", len(patches))
    uncertainty = sizes.astype(np.float64)
    # The priority only matters for extra patches and for clusters too small for a share.
    share, extra = divmod(budget, max(1, int((sizes > 0).sum())))
    if tuned_model is not None and (extra or bool((sizes[sizes > 0] < share).any())):
        rng = np.random.default_rng(seed)
        uncertainty = _cluster_entropy(tuned_model, srcs, patches, k, rng, dev, batch_size)
        log.info("cluster entropy of majority classes: %s", np.round(uncertainty, 3).tolist())
    priority = sorted(range(k), key=lambda c: (-uncertainty[c], -sizes[c], c))
    return priority, allocate(budget, sizes.tolist(), priority)


def _check_request(
    scenes: Sequence[str | Path],
    model: str | Path,
    output: "OutputSpec | str | Path | None",
    patches: PatchSpec,
    stack: Sequence[str | Path],
    tuned: str | Path | None,
    clusters: int | Literal["budget", "model"],
    pick: Literal["nearest", "diverse"],
) -> tuple[int, int | None, Path | None]:
    """Check a :func:`suggest_labels` request before any work: the budget, the number of
    clusters to draw afresh (None: the model's own) and the output path (None: none asked)."""
    if patches.count is None:
        raise LcmapError("No budget given; ask for a number of patches (PatchSpec(count=N)).")
    if patches.file is not None:
        raise LcmapError("suggest_labels chooses the patches; a patch file is fine-tuning's.")
    fresh = fresh_clusters(clusters, patches.count, pick)
    if not scenes:
        raise LcmapError("No scene given; pass at least one scene to choose patches from.")
    if output is None:
        return patches.count, fresh, None
    out = OutputSpec.of(output)
    inputs = [model, *scenes, *stack, *([tuned] if tuned is not None else [])]
    return patches.count, fresh, check_output(out.path, out.overwrite, inputs=inputs)


def _footprints(
    ranked: list[tuple[int, Patch]],
    scenes: Sequence[str | Path],
    transforms: list[Any],
    patch_size: int,
    crs: Any,
) -> "gpd.GeoDataFrame":
    """The suggested patches in order, as a table of footprints (see :func:`suggest_labels`)."""
    import geopandas as gpd
    from shapely.geometry import box

    names = [Path(s).stem for s in scenes]
    records = [
        {
            "scene": names[p.scene],
            "cluster": p.cluster,
            "rank": rank,
            "order": order,
            "distance": p.distance,
            "confidence": p.confidence,
            "row": int(p.window.row_off),
            "col": int(p.window.col_off),
            "size": patch_size,
            "geometry": box(*bounds(p.window, transforms[p.scene])),
        }
        for order, (rank, p) in enumerate(ranked, 1)
    ]
    return gpd.GeoDataFrame(records, geometry="geometry", crs=crs)


def _one_crs(srcs: Sequence[Any]) -> str | None:
    """The scenes' one CRS (footprints are written in it)."""
    crss = {s.crs.to_string() if s.crs else None for s in srcs}
    if len(crss) > 1:
        raise InvalidSceneError(
            f"The scenes have different CRSs ({', '.join(sorted(map(str, crss)))}); "
            "run suggest-labels once per CRS."
        )
    return next(iter(crss))


def _grids(srcs: Sequence[Any], size: int) -> list[list[Window]]:
    """Each scene's grid of whole ``size`` patches; a scene too small is skipped, said."""
    grids = [_grid(s.width, s.height, size) for s in srcs]
    for s, g in zip(srcs, grids, strict=True):
        if not g:
            log.warning("%s is smaller than one %d-px patch; skipped", s.name, size)
    if not any(grids):
        raise InvalidSceneError(f"No {size}-px patch fits in the scenes; use a smaller patch size.")
    return grids


@dataclass
class _GridEmbedder:
    """Embeds the grid patches of scenes, batch by batch, skipping mostly-nodata patches."""

    encoder: FewShotEncoder
    norm: Any
    dev: "torch.device"
    batch_size: int
    assign: bool  # to the model's clusters (else they are drawn afresh from the embeddings)
    keep_embeddings: bool  # one vector per patch: 960 floats for resnet18-unet

    def patches(
        self,
        srcs: Sequence[Any],
        bands: Sequence[list[int]],
        grids: Sequence[list[Window]],
        progress: ProgressFn | None,
    ) -> list[Patch]:
        import torch

        found: list[Patch] = []
        done, total = 0, sum(len(g) for g in grids)
        with torch.inference_mode():
            for i, (src, grid) in enumerate(zip(srcs, grids, strict=True)):
                for start in range(0, len(grid), self.batch_size):
                    wins = grid[start : start + self.batch_size]
                    reads = [read_window(src, w, bands[i]) for w in wins]
                    keep = [k for k, (_, v) in enumerate(reads) if v.mean() >= MIN_VALID]
                    if keep:
                        x = np.stack([self.norm.apply(*reads[k]) for k in keep])
                        found += _embed(
                            self.encoder,
                            x,
                            i,
                            [wins[k] for k in keep],
                            self.dev,
                            assign=self.assign,
                            keep_embeddings=self.keep_embeddings,
                        )
                    done += len(wins)
                    if progress is not None:
                        progress(done, total)
        return found


def _embed(
    encoder: FewShotEncoder,
    x: NDArray[np.float32],
    scene: int,
    windows: list[Window],
    dev: "torch.device",
    *,
    assign: bool,
    keep_embeddings: bool,
) -> list[Patch]:
    """The patches, with ``assign`` assigned to the model's clusters (else cluster -1, for
    :func:`recluster`), with ``keep_embeddings`` holding their embeddings."""
    import torch

    embedded = encoder.embed_windows(torch.from_numpy(x).to(dev))
    vectors = embedded.float().cpu().numpy() if keep_embeddings else [None] * len(windows)
    if not assign:
        return [Patch(scene, w, -1, 0.0, 0.0, v) for w, v in zip(windows, vectors, strict=True)]
    found = encoder.assign_windows(embedded)
    return [
        Patch(scene, w, int(c), float(d), float(conf), v)
        for w, c, d, conf, v in zip(
            windows,
            found.cluster.tolist(),
            found.distance.tolist(),
            found.confidence.tolist(),
            vectors,
            strict=True,
        )
    ]


def _cluster_entropy(
    tuned: tuple["Segmenter", ModelHeader],
    srcs: Sequence[Any],
    patches: list[Patch],
    k: int,
    rng: np.random.Generator,
    dev: "torch.device",
    batch_size: int,
) -> NDArray[np.float64]:
    """Entropy of the tuned model's majority class over (a sample of) each cluster's patches."""
    import torch

    method, header = tuned
    norm = header.read_spec().norm
    out = np.zeros(k, dtype=np.float64)
    for c in range(k):
        members = [p for p in patches if p.cluster == c]
        if not members:
            continue
        if len(members) > ENTROPY_SAMPLE:
            idx = rng.choice(len(members), ENTROPY_SAMPLE, replace=False)
            members = [members[int(i)] for i in np.sort(idx)]
        majority = np.zeros(method.num_classes, dtype=np.int64)
        for start in range(0, len(members), batch_size):
            group = members[start : start + batch_size]
            reads = [
                read_window(srcs[p.scene], p.window, resolve_bands(srcs[p.scene], header.bands))
                for p in group
            ]
            x = torch.from_numpy(np.stack([norm.apply(*r) for r in reads])).to(dev)
            with torch.inference_mode():
                labels = method.predict_tile_labels(x).cpu().numpy()
            for lab, (_, valid) in zip(labels, reads, strict=True):
                counts = np.bincount(lab[valid], minlength=method.num_classes)
                majority[int(counts.argmax())] += 1
        out[c] = entropy(majority)
    return out


def _write(frame: "gpd.GeoDataFrame", output: Path) -> None:
    """Write ``frame`` beside ``output`` under a temporary name, then rename (atomic)."""
    folder = temp_dir(output)  # the file keeps the target's name (FlatGeobuf names its layer so)
    tmp = folder / output.name
    try:
        frame.to_file(tmp, layer="suggestions" if output.suffix.lower() == ".gpkg" else None)
        publish(tmp, output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["suggest_labels"]
