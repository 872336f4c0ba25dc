"""Cosine (spherical) k-means on unit vectors: STEGO's cluster probe, fitted in one pass."""

import torch
import torch.nn.functional as F
from torch import Tensor


def spherical_kmeans(
    x: Tensor, k: int, generator: torch.Generator, iterations: int = 50, restarts: int = 3
) -> Tensor:
    """Cosine k-means (k-means++ initialisation) on unit vectors.

    Args:
        x: (M, d) unit vectors.
        k: number of clusters (at most M).
        generator: CPU generator for the initialisation.

    Returns:
        (k, d) unit centroids, ordered by decreasing cluster size.
    """
    m = x.shape[0]
    if m < k:
        raise ValueError(f"cannot fit {k} clusters to {m} feature vectors; sample more crops.")
    best: tuple[float, Tensor] | None = None
    for _ in range(restarts):
        first = int(torch.randint(m, (1,), generator=generator))
        centres = [x[first]]
        best_sim = x @ x[first]
        for _ in range(1, k):
            dist = (1 - best_sim).clamp_min(0).cpu()
            probs = dist if float(dist.sum()) > 0 else torch.ones(m)
            idx = int(torch.multinomial(probs, 1, generator=generator))
            centres.append(x[idx])
            best_sim = torch.maximum(best_sim, x @ x[idx])
        c = torch.stack(centres)
        for _ in range(iterations):
            sims = x @ c.T
            top, assign = sims.max(1)
            sums = torch.zeros_like(c).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k)
            for j in torch.nonzero(counts == 0).flatten().tolist():
                # An empty cluster takes the point worst served by the others.
                far = int(top.argmin())
                sums[j] = x[far]
                top[far] = 2.0
            new = F.normalize(sums, dim=1)
            if torch.allclose(new, c, atol=1e-6):
                break
            c = new
        sims = x @ c.T
        score = float(sims.max(1).values.sum())
        if best is None or score > best[0]:
            best = (score, c)
    assert best is not None
    c = best[1]
    sizes = torch.bincount((x @ c.T).argmax(1), minlength=k)
    return c[torch.argsort(sizes, descending=True, stable=True)]
