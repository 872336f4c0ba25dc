"""Which SimCLR pre-training schedule, chosen on dubai_dev tiles 1-4 alone: several seeds per
setting, scored by how well the encoder's embedding clusters into the land-cover classes.

Each setting (``NAME=JSON`` of ``simclr`` options over the base: resnet18-unet, 64-px
windows, 1024 windows, 1000 Adam steps of 16 at 1e-3, temperature 0.1) is pre-trained on the
36 scenes of tiles 1-4 with each seed. The score: every labelled 128-px patch of tiles 1-4 is
embedded (the hypercolumn at stride 4), cosine k-means with K = 5 is fitted on 16 384 random
cells (three k-means seeds), and the pooled Hungarian mIoU of the cells against their truth
(the centre pixel of each 4 x 4 cell) is averaged; beside it, the label-free RankMe of the
sampled cells. Tiles 5-6 are not read.

Usage:
    python benchmarks/pretrain_choice.py --out /tmp/pretrain_choice \\
        base='{}' cosine='{"schedule": "cosine"}' windows4096='{"windows": 4096}'
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from quality_cas import choice_run, pooled_metrics

from lcmap import api
from lcmap.fewshot.encoder import load_encoder
from lcmap.fewshot.finetune import _training_patches
from lcmap.methods._cluster import spherical_kmeans
from lcmap.models import read_header

K = 5
BASE = {"encoder": "resnet18-unet", "crop_size": 64, "steps": 1000, "windows": 1024,
        "batch_size": 16, "optimizer": "adam", "lr": 1e-3, "temperature": 0.1}  # fmt: skip


def probe_miou(
    model: Path, scenes: list[Path], truths: list[Path], restarts: int = 3
) -> tuple[list[float], float]:
    """Pooled Hungarian mIoU of K-means on the embedding cells, one per k-means seed, and the
    cells' RankMe (:func:`rankme`, on the first k-means seed's sample)."""
    images, targets, _ = _training_patches(scenes, scenes, truths, read_header(model), None,
                                           None, None, 128, None, 0)  # fmt: skip
    x = torch.from_numpy(np.stack(images))
    y = torch.from_numpy(np.stack(targets).astype(np.int64))
    net = load_encoder(model)[0].net  # type: ignore[attr-defined]
    net.eval()
    with torch.no_grad():
        emb = F.normalize(
            torch.cat([net.embed(x[i : i + 32]) for i in range(0, len(x), 32)]), dim=1
        )
    cells = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    truth = y[:, 2::4, 2::4].reshape(-1)
    keep = truth != 255
    scores, rank = [], 0.0
    for seed in range(restarts):
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(cells), generator=gen)[:16384]
        rank = rank or rankme(cells[pick])
        centres = spherical_kmeans(cells[pick], K, gen)
        pred = (cells @ centres.T).argmax(1)
        scores.append(pooled_metrics([(pred[keep].numpy(), truth[keep].numpy())], "hungarian").miou)
    return scores, rank


def rankme(x: torch.Tensor) -> float:
    """RankMe (Garrido et al., ICML 2023): exp of the entropy of the normalised singular values
    of (N, D) embeddings, the effective rank. A label-free score that tracks the downstream
    quality of a self-supervised encoder across runs; here to see whether it tells this
    project's good pre-training seeds from bad ones."""
    sv = torch.linalg.svdvals(x.double())
    p = sv / sv.sum() + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("settings", nargs="+", metavar="NAME=JSON")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse", action="store_true", help="Keep models already in --out.")
    args = p.parse_args()
    scenes, truths = choice_run(args)
    print("| setting | seed | final loss | pre-training s | probe mIoU (k-means seeds 0-2) | "
          "RankMe |\n|---|---|---|---|---|---|", flush=True)  # fmt: skip
    found: list[tuple[float, float, float]] = []  # (probe, RankMe, loss) per model
    for setting in args.settings:
        name, options = setting.split("=", 1)
        for seed in (int(s) for s in args.seeds.split(",")):
            model = args.out / f"{name}-{seed}.lcmap"
            t0 = time.perf_counter()
            if not (args.reuse and model.exists()):
                api.train(scenes, model, method="simclr", classes=K, seed=seed, device="cpu",
                          overwrite=True, options=BASE | json.loads(options))  # fmt: skip
            seconds = time.perf_counter() - t0
            loss = read_header(model).extra["final_loss"]
            scores, rank = probe_miou(model, scenes, truths)
            print(f"| {name} | {seed} | {loss:.3f} | {seconds:.0f} | {np.mean(scores):.3f} "
                  f"({' / '.join(f'{s:.3f}' for s in scores)}) | {rank:.1f} |",
                  flush=True)  # fmt: skip
            found.append((float(np.mean(scores)), rank, loss))
    print(correlations(found))


def correlations(found: list[tuple[float, float, float]]) -> str:
    """Spearman's rank correlation of the probe with RankMe and with the final loss."""
    from scipy.stats import spearmanr

    if len(found) < 3:
        return "(Spearman needs 3 models or more)"
    probe, rank, loss = zip(*found, strict=True)
    r, p = spearmanr(probe, rank)
    r2, p2 = spearmanr(probe, loss)
    return (f"Spearman with the probe over {len(found)} models: RankMe {r:+.2f} (p = {p:.2f}), "
            f"final loss {r2:+.2f} (p = {p2:.2f})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
