"""Which few-shot head on a pre-trained encoder: chosen on tiles 1-4 of dubai_dev alone.

Every labelled 128-px patch of tiles 1-4 is a candidate; per seed, 20 random patches train and
200 others (same tiles, never trained on) score, pooled mIoU over the 5 classes. Heads compared
on one ``simclr`` model (``quality_encoders.py`` makes it):

- ``encoder_finetuned`` options, written ``key=value,...`` (``head=linear,freeze_encoder=1``:
  the linear probe; ``head=decoder,freeze_encoder=1``: seed 003's Frozen row), with ``bn=1``
  adding a BatchNorm without affine before the linear layer (MAE's linear probe);
- ``ctl=K``: cluster-then-label, K cosine k-means clusters of the embeddings of every patch
  (labels unused), each cluster named by the class-balanced majority of the labelled pixels in
  it (an empty cluster by its nearest named one).

Usage:
    python benchmarks/fewshot_heads.py /tmp/encq/resnet18-unet-simclr.lcmap \\
        head=linear,freeze_encoder=1 head=decoder,freeze_encoder=1 ctl=20
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from quality_cas import DATA, read_index

from lcmap.fewshot.encoder import load_encoder
from lcmap.fewshot.finetune import _training_patches
from lcmap.methods._cluster import spherical_kmeans
from lcmap.models import read_header

K = 5


def miou(pred: torch.Tensor, truth: torch.Tensor) -> float:
    keep = truth != 255
    conf = torch.bincount(truth[keep] * K + pred[keep], minlength=K * K).reshape(K, K).double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    return float((inter[union > 0] / union[union > 0]).mean())


def options(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (kv.split("=") for kv in text.split(",")):
        out[key] = {"lr": float, "steps": int, "ctl": int}.get(key, str)(value)
        if key in ("freeze_encoder", "bn"):
            out[key] = value == "1"
    return out


def tuned_head(model: Path, opts: dict[str, Any], seed: int, x: torch.Tensor,
               y: torch.Tensor) -> Any:  # fmt: skip
    """An ``encoder_finetuned`` net trained on (x, y); returns a predict function."""
    encoder, _ = load_encoder(model)
    bn = opts.pop("bn", False)
    tuned: Any = encoder.tuned(K, "simclr", seed=seed, batch_size=8, **({"steps": 100} | opts))
    if bn:
        net = tuned.net
        net.head = torch.nn.Sequential(torch.nn.BatchNorm2d(net.embed_dim(), affine=False),
                                       net.head)  # fmt: skip
    tuned.train_on(x, y)
    return lambda v: tuned.predict(v).argmax(1)


def cluster_then_label(embed: torch.Tensor, clusters: int, train: np.ndarray,
                       y: torch.Tensor) -> Any:  # fmt: skip
    """K-means on every patch's embedding cells; clusters named from the labelled patches."""
    cells = embed.permute(0, 2, 3, 1).reshape(-1, embed.shape[1])
    pick = torch.randperm(len(cells), generator=torch.Generator().manual_seed(0))[:200_000]
    centres = spherical_kmeans(cells[pick], clusters, torch.Generator().manual_seed(0),
                               iterations=30, restarts=1)  # fmt: skip

    def assign(index: np.ndarray) -> torch.Tensor:
        sims = torch.einsum("ndhw,kd->nkhw", embed[torch.from_numpy(index)], centres)
        return F.interpolate(sims, size=y.shape[-2:], mode="bilinear").argmax(1)

    found, keep = assign(train), y != 255
    hist = torch.bincount(found[keep] * K + y[keep], minlength=clusters * K).double()
    hist = hist.reshape(clusters, K) / hist.reshape(clusters, K).sum(0).clamp_min(1)
    names, empty = hist.argmax(1), hist.sum(1) == 0
    if empty.any():
        sims = centres @ centres.T
        sims[:, empty] = -2
        names[empty] = names[sims[empty].argmax(1)]
    return lambda index: names[assign(index)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("heads", nargs="+")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows, _ = read_index(DATA)
    scenes, truths = [DATA / r["scene"] for r in rows], [DATA / r["truth"] for r in rows]
    images, targets, _ = _training_patches(scenes, scenes, truths, read_header(args.model), None,
                                           None, None, 128, None, 0)  # fmt: skip
    x = torch.from_numpy(np.stack(images))
    y = torch.from_numpy(np.stack(targets).astype(np.int64))
    embed = None
    print(f"{len(x)} labelled patches in tiles 1-4", flush=True)
    for head in args.heads:
        opts, scores, t0 = options(head), [], time.perf_counter()
        for seed in (int(s) for s in args.seeds.split(",")):
            order = np.random.default_rng(100 + seed).permutation(len(x))
            train, held = order[:20], order[20:220]
            if "ctl" in opts:
                if embed is None:
                    net = load_encoder(args.model)[0].net  # type: ignore[attr-defined]
                    net.eval()
                    with torch.no_grad():
                        embed = torch.cat([net.embed(x[i : i + 32]) for i in range(0, len(x), 32)])
                predict = cluster_then_label(embed, opts["ctl"], train, y[train])
                pred = predict(held)
            else:
                predict = tuned_head(args.model, dict(opts), seed, x[train], y[train])
                with torch.no_grad():
                    pred = torch.cat([predict(x[held[i : i + 16]]) for i in range(0, 200, 16)])
            scores.append(miou(pred, y[held]))
        print(f"| {head} | {np.mean(scores):.3f} | "
              f"{' / '.join(f'{s:.3f}' for s in scores)} | {time.perf_counter() - t0:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
