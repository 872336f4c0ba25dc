"""Which patches to take from a pool of embedded patches: the budget split over clusters
(Ghosh et al.), each cluster's share typical and diverse (TypiClust, Hacohen et al. 2022), or
clusters drawn afresh from the embeddings. :mod:`lcmap.workflows.suggest` embeds the patches
and writes the choice; this module only chooses (no I/O)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from lcmap.errors import LcmapError

if TYPE_CHECKING:
    import torch


@dataclass
class Patch:
    """A candidate patch: its scene (an index), window, cluster and distance to the cluster's
    centre (1 - cosine), the confidence of that assignment, and its embedding if kept."""

    scene: int
    window: Window
    cluster: int
    distance: float
    confidence: float
    embedding: NDArray[np.float32] | None = None


def allocate(budget: int, sizes: Sequence[int], priority: Sequence[int]) -> list[int]:
    """Split ``budget`` over clusters: evenly, extras and overflow in ``priority`` order.

    Args:
        budget: patches to pick.
        sizes: patches available per cluster.
        priority: cluster ids, most deserving of an extra patch first.

    Returns:
        Patches to take per cluster (never more than its size; sums to
        ``min(budget, sum(sizes))``).
    """
    alloc = [0] * len(sizes)
    nonempty = [c for c in priority if sizes[c] > 0]
    if not nonempty:
        return alloc
    share, extra = divmod(budget, len(nonempty))
    for i, c in enumerate(nonempty):
        alloc[c] = min(sizes[c], share + (1 if i < extra else 0))
    left = min(budget, sum(sizes)) - sum(alloc)
    while left > 0:  # clusters too small for their share pass the rest on, in priority order
        for c in nonempty:
            if left and alloc[c] < sizes[c]:
                alloc[c] += 1
                left -= 1
    return alloc


def entropy(counts: NDArray[np.integer[Any]]) -> float:
    """Shannon entropy (nats) of a histogram; 0 for an empty one."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def parse_clusters(text: str) -> int | Literal["budget", "model"]:
    """``--clusters`` as :func:`suggest_labels` takes it: ``budget``, ``model`` or a number.

    Raises:
        ValueError: anything else.
    """
    if text == "budget":
        return "budget"
    if text == "model":
        return "model"
    if text.isdigit():
        return int(text)
    raise ValueError(f"'{text}': use budget, model or a number of clusters.")


def fresh_clusters(
    clusters: int | Literal["budget", "model"], budget: int, pick: str
) -> int | None:
    """How many clusters to draw afresh (None: the model's own), checked with ``pick``."""
    if clusters == "budget":
        clusters = budget
    if pick not in ("nearest", "diverse"):
        raise LcmapError(f"pick {pick!r} is invalid; use 'nearest' or 'diverse'.")
    if clusters == "model":
        return None
    if isinstance(clusters, int) and not isinstance(clusters, bool) and clusters >= 1:
        return clusters
    raise LcmapError(
        f"clusters {clusters!r} is invalid; use 'budget', 'model' or a number of clusters."
    )


def in_order(
    patches: list[Patch], priority: list[int], alloc: list[int], pick: str, seed: int
) -> list[tuple[int, Patch]]:
    """Each cluster's share (in priority order), interleaved rank by rank: (rank, patch)."""
    rows = []
    for c in priority:
        members = sorted((p for p in patches if p.cluster == c), key=lambda p: p.distance)
        if pick == "diverse":
            members = spread(members, alloc[c], seed)
        for rank, p in enumerate(members[: alloc[c]], start=1):
            rows.append((rank, priority.index(c), p))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(rank, p) for rank, _, p in rows]


def unit_embeddings(patches: Sequence[Patch]) -> "torch.Tensor":
    import torch

    vectors = [p.embedding for p in patches if p.embedding is not None]
    return torch.nn.functional.normalize(torch.from_numpy(np.stack(vectors)), dim=1)


def spread(members: list[Patch], share: int, seed: int) -> list[Patch]:
    """``share`` patches of one cluster, typical and diverse: the members clustered afresh
    (cosine k-means, seeded) into ``share`` sub-clusters, the member nearest each
    sub-centroid, largest sub-cluster first.

    This is TypiClust's rule (Hacohen et al., ICML 2022) applied inside each of Ghosh et al.'s
    clusters: Ghosh et al.'s even split keeps every mode of the model in the budget (a rare class
    keeps its share), while the nearest patches to one centroid are often near-copies of one
    another (the same roof type, the same field); one patch per sub-mode covers the cluster's
    variety instead. ``members`` come sorted by distance to the model's centroid; a share of
    all of them or none needs no clustering."""
    import torch

    from lcmap.methods._cluster import spherical_kmeans

    if share <= 0 or share >= len(members):
        return members
    x = unit_embeddings(members)
    centres = spherical_kmeans(x, share, torch.Generator().manual_seed(seed))
    sims = x @ centres.T
    owner = sims.argmax(dim=1)
    chosen: list[int] = []
    for j in range(share):
        mine = (owner == j).nonzero().flatten().tolist()
        # an empty sub-cluster (rare after k-means) takes the nearest member not yet taken
        pool = [i for i in (mine or range(len(members))) if i not in chosen]
        chosen.append(max(pool, key=lambda i: float(sims[i, j])))
    return [members[i] for i in chosen]


def recluster(patches: list[Patch], clusters: int, seed: int) -> int:
    """Cluster the patches' embeddings afresh (cosine k-means, seeded) and assign each patch
    its cluster, distance (1 - cosine) and confidence (softmax of cosine / 0.1, as the simclr
    probe's); returns the number of clusters.

    TypiClust (Hacohen et al., ICML 2022, "Active learning on a budget") shows that with very
    few labels the patches to label should be typical *and* diverse: one per cluster of the
    self-supervised embeddings, as many clusters as the budget. Ghosh et al. spread the budget
    over the model's K clusters (K = the map's classes), so a budget of 20 on K = 5 takes the
    4 patches nearest each of 5 centroids."""
    import torch

    from lcmap.methods._cluster import spherical_kmeans

    x = unit_embeddings(patches)
    k = min(clusters, len(patches))
    centres = spherical_kmeans(x, k, torch.Generator().manual_seed(seed))
    sims = x @ centres.T
    best = sims.max(dim=1)
    confidence = (sims / 0.1).softmax(dim=1).max(dim=1).values
    for p, c, s, q in zip(
        patches, best.indices.tolist(), best.values.tolist(), confidence.tolist(), strict=True
    ):
        p.cluster, p.distance, p.confidence = int(c), 1.0 - float(s), float(q)
    return k
