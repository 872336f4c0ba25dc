"""How sure is a difference between two rows of ``quality_encoders.py``? A paired bootstrap.

Every run of ``quality_encoders.py`` keeps each scored crop's confusion matrix (truth x
predicted class). Two rows are paired run by run: the same ``results.json`` (one pre-training
seed of one fold), the same number of patches and the same fine-tuning seed; ``--against``
takes row B from other files instead, paired with the first files in order (two pre-trainings
with the same fold and seeds). The statistic is the mean over the paired runs of
``mIoU(A) - mIoU(B)``, each mIoU pooled over the scored crops as ``quality_encoders.py``
pools it; with several held-out tile sets (the four folds), the mean of their means.

Two things could make the difference come out otherwise, and each is resampled with
replacement, within each held-out tile set, 10,000 times (Efron and Tibshirani 1993; the
percentile interval):

- ``scenes``: the ground scored (which crops), the runs kept: would other scenes of that
  kind give the same difference?
- ``runs``: the training seeds, the crops kept: would other seeds? Two stages, as the runs
  are nested (Davison and Hinkley 1997, section 3.8): the pre-trainings (files) are drawn
  again, then the fine-tuning seeds within each; drawing at both stages errs on the wide side.
- ``both``: the two at once, the interval a choice should be read against.

Before any resampling, the script recomputes every run's pooled mIoU from its crops and stops
if it differs from the stored one: the intervals are about the very figures of the tables.

Usage:
    python benchmarks/paired_ci.py --a "simclr linear-texture, suggested" \\
        --b "random linear-texture, suggested" /tmp/s22/ntf*_*/results.json
    python benchmarks/paired_ci.py --a "simclr linear-texture, suggested" \\
        --b "simclr linear-texture, suggested" /tmp/s22/ssf*_*/results.json \\
        --against /tmp/s22/ntf*_*/results.json

(the folders of ``benchmarks/README.md``'s section "How sure are these differences?")
"""

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("scenes", "runs", "both")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="results.json of quality_encoders.py")
    p.add_argument("--a", required=True, help="Row A (as in the results' runs).")
    p.add_argument("--b", required=True, help="Row B, subtracted.")
    p.add_argument("--against", nargs="+", type=Path, metavar="FILE",
                   help="Row B from these files, i-th with i-th of FILES.")  # fmt: skip
    p.add_argument("--patches", type=int, default=20)
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def miou(conf: np.ndarray) -> np.ndarray:
    """Mean IoU over the classes present in the truth of ``(..., k, k + 1)`` confusions (rows
    truth, columns predicted class and a last one for labels outside the classes), as
    :func:`lcmap.eval.metrics.compute_metrics` gives it."""
    k = conf.shape[-2]
    tp = np.diagonal(conf[..., :k], axis1=-2, axis2=-1).astype(float)
    support = conf.sum(-1).astype(float)
    union = support + conf[..., :k].sum(-2) - tp
    present = support > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    mean: np.ndarray = iou.sum(-1) / np.maximum(present.sum(-1), 1)
    return mean


def runs_of(path: Path, row: str, patches: int) -> tuple[tuple[str, ...], dict[int, Any]]:
    """The crops scored in ``path`` and its runs of ``row`` with ``patches``, by seed."""
    results = json.loads(path.read_text())
    if "crops" not in results:
        sys.exit(f"{path} has no crop confusions: re-run quality_encoders.py (--reuse) for it.")
    runs = {}
    for r in results["runs"]:
        if r["row"] != row or r["patches"] != patches:
            continue
        conf = np.asarray(r["confusions"], dtype=np.int64)
        if not np.isclose(miou(conf.sum(0)), r["miou"], rtol=0, atol=1e-12):
            sys.exit(f"{path}: the crops of {row!r} seed {r['seed']} do not give its mIoU.")
        runs[r["seed"]] = conf
    return tuple(results["crops"]), runs


def strata(args: argparse.Namespace) -> dict[tuple[str, ...], list[tuple[int, Any, Any]]]:
    """Paired (pre-training, A, B): the index of the file pair and the confusions, ``(crops, k,
    k + 1)`` each, grouped by the crops scored."""
    against = args.against or args.files
    if len(against) != len(args.files):
        sys.exit(f"--against gives {len(against)} files for {len(args.files)}.")
    groups: dict[tuple[str, ...], list[tuple[int, Any, Any]]] = defaultdict(list)
    for i, (fa, fb) in enumerate(zip(args.files, against, strict=True)):
        crops_a, runs_a = runs_of(fa, args.a, args.patches)
        crops_b, runs_b = runs_of(fb, args.b, args.patches)
        if crops_a != crops_b:
            sys.exit(f"{fa} and {fb} scored different crops.")
        groups[crops_a] += [
            (i, runs_a[s], runs_b[s]) for s in sorted(runs_a.keys() & runs_b.keys())
        ]
    if not any(groups.values()):
        sys.exit(f"no paired runs of {args.a!r} and {args.b!r} with {args.patches} patches.")
    return groups


def run_weights(models: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, runs)`` weights of a two-stage draw: the pre-trainings ``models`` (one
    per run) with replacement, then each one's runs with replacement."""
    ids, index = np.unique(models, return_inverse=True)
    picked = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=resamples)
    weights = np.zeros((resamples, len(models)))
    for g in range(len(ids)):
        members = np.flatnonzero(index == g)
        n = len(members)
        weights[:, members] = picked[:, [g]] * rng.multinomial(n, np.full(n, 1 / n), resamples)
    return weights


def bootstrap(
    pairs: list[tuple[int, Any, Any]], mode: str, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``resamples`` values of the mean paired difference with the crops, the runs or both
    drawn again with replacement (one stratum)."""
    a = np.stack([p[1] for p in pairs]).astype(float)  # (runs, crops, k, k + 1)
    b = np.stack([p[2] for p in pairs]).astype(float)
    n_runs, n_crops = a.shape[:2]
    crop_w = np.ones((resamples, n_crops))
    run_w = np.ones((resamples, n_runs))
    if mode in ("scenes", "both"):
        crop_w = rng.multinomial(n_crops, np.full(n_crops, 1 / n_crops), resamples).astype(float)
    if mode in ("runs", "both"):
        run_w = run_weights(np.array([p[0] for p in pairs]), resamples, rng)
    pooled_a, pooled_b = (np.einsum("rc,nckl->rnkl", crop_w, x) for x in (a, b))
    diff = miou(pooled_a) - miou(pooled_b)
    mean: np.ndarray = (diff * run_w).sum(1) / run_w.sum(1)
    return mean


def main() -> None:
    args = parse()
    groups = strata(args)
    rng = np.random.default_rng(args.seed)
    print(f"A = {args.a!r}, B = {args.b!r}, {args.patches} patches")
    print("| held-out crops | paired runs | mean A | mean B | A - B | A higher |")
    print("|---|---|---|---|---|---|")
    points = []
    for crops, pairs in groups.items():
        ma = np.array([miou(p[1].sum(0)) for p in pairs])
        mb = np.array([miou(p[2].sum(0)) for p in pairs])
        points.append(float((ma - mb).mean()))
        print(
            f"| {len(crops)} ({crops[0]}...) | {len(pairs)} | {ma.mean():.3f} | "
            f"{mb.mean():.3f} | {points[-1]:+.3f} | {(ma > mb).sum()} of {len(pairs)} |"
        )
    print(f"\nmean over the {len(groups)} held-out sets: A - B = {np.mean(points):+.3f}")
    print("| resampled | 95% interval | share of resamples above 0 |")
    print("|---|---|---|")
    for mode in MODES:
        draws = np.mean([bootstrap(p, mode, args.resamples, rng) for p in groups.values()], 0)
        low, high = np.percentile(draws, [2.5, 97.5])
        print(f"| {mode} | {low:+.3f} to {high:+.3f} | {(draws > 0).mean():.3f} |")


if __name__ == "__main__":
    main()
