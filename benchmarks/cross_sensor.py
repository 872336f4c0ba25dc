"""Cross-sensor pre-training on BigEarthNet pairs: does one sensor's encoder find the other's?

Protocol (``../shared/data/bigearthnet_pairs``: 41 co-registered Sentinel-1 VV/VH and
Sentinel-2 12-band 120 x 120 px patches with a train/validation/test split and CORINE labels):

1. Pre-train ``simclr`` on the train split's pairs (``lcmap pretrain --pair S2:S1``): an
   encoder per sensor, one projection space, NT-Xent between a window of S2 and the same
   window of S1 (other windows are the negatives).
2. Retrieval on the test split: embed each patch's S1 (its encoder + projection) and S2; top-1
   retrieval of the S2 of a patch from its S1 among all test pairs (chance 1/N), and the other
   way; against the same networks untrained (random init).
3. k-NN probe of the CORINE labels: pooled encoder features of train+validation patches from
   S1 alone, S2 alone and both (concatenated); each test patch takes the labels that at least 2
   of its 3 nearest neighbours (cosine) carry; sample-mean F1 of the label sets.

Usage:
    python benchmarks/cross_sensor.py --out /tmp/cross_sensor
"""

import argparse
import csv
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from lcmap import api
from lcmap.errors import NoNodataWarning
from lcmap.io.scene import Normalisation
from lcmap.methods import get_method
from lcmap.models import load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "bigearthnet_pairs"
log = logging.getLogger("cross_sensor")


def read_rows(data: Path) -> list[dict[str, Any]]:
    with open(data / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def patches(data: Path, rows: list[dict[str, Any]], key: str, norm: Normalisation) -> torch.Tensor:
    """(N, C, 96, 96) normalised centre crops of each row's ``key`` raster."""
    out = []
    for row in rows:
        with rasterio.open(data / row[key]) as src:
            raw = src.read(out_dtype="float32")[:, 12:108, 12:108]
        valid = np.isfinite(raw).all(axis=0)
        out.append(norm.apply(np.nan_to_num(raw), valid))
    return torch.from_numpy(np.stack(out))


def embed(seg: Any, x: torch.Tensor, partner: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled last-stage features and their projection, by the sensor's encoder (the one
    encoder of a model pre-trained without pairs)."""
    net = seg.pair_net if partner and seg.pair_net is not None else seg.net
    net.eval()
    seg.projection.eval()
    with torch.no_grad():
        pooled = net.features(x)[-1].mean(dim=(2, 3))
        return pooled, torch.nn.functional.normalize(seg.projection(pooled), dim=1)


def retrieval(za: torch.Tensor, zb: torch.Tensor) -> float:
    """Top-1 accuracy of finding row i of ``zb`` from row i of ``za`` (cosine)."""
    return float(((za @ zb.T).argmax(dim=1) == torch.arange(len(za))).float().mean())


def knn_f1(train: torch.Tensor, train_labels: list[set[str]], test: torch.Tensor,
           test_labels: list[set[str]], k: int = 3) -> float:  # fmt: skip
    sims = (
        torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    )
    f1s = []
    for i, row in enumerate(sims):
        near = row.topk(k).indices.tolist()
        votes: dict[str, int] = {}
        for j in near:
            for label in train_labels[j]:
                votes[label] = votes.get(label, 0) + 1
        pred = {lab for lab, v in votes.items() if v >= 2}
        hit = len(pred & test_labels[i])
        f1s.append(2 * hit / (len(pred) + len(test_labels[i])) if pred or test_labels[i] else 1)
    return float(np.mean(f1s))


def pretrain_parser(doc: str) -> argparse.ArgumentParser:
    """The options every pair pre-training benchmark takes (this one, ``multi_date.py``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--encoder", default="resnet18-unet")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--windows", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p


def quiet_run(threads: int) -> None:
    """Log progress lines only, no lcmap chatter or nodata warnings; torch on ``threads``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("lcmap").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=NoNodataWarning)
    torch.set_num_threads(threads)


def main() -> None:
    p = pretrain_parser(__doc__)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--temperature", type=float, default=0.1)
    args = p.parse_args()
    quiet_run(args.threads)
    if not (args.data / "index.csv").exists():
        sys.exit(f"{args.data / 'index.csv'} not found; the BigEarthNet pairs are needed.")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(args.data)
    train = [r for r in rows if r["split"] == "train"]
    known = [r for r in rows if r["split"] in ("train", "validation")]
    test = [r for r in rows if r["split"] == "test"]
    model = args.out / "s2_s1.lcmap"
    options = {"encoder": args.encoder, "crop_size": 64, "steps": args.steps,
               "windows": args.windows, "batch_size": args.batch, "optimizer": "adam",
               "temperature": args.temperature, "probe_windows": 64}  # fmt: skip
    t0 = time.perf_counter()
    header = api.train([args.data / r["s2"] for r in train], model, method="simclr", classes=5,
                       partners=[args.data / r["s1"] for r in train], seed=args.seed,
                       device="cpu", overwrite=True, options=options)  # fmt: skip
    seconds = time.perf_counter() - t0
    trained, _ = load_model(model)
    pairs = header.extra["pairs"]
    norm_s2 = Normalisation(tuple(header.norm_low), tuple(header.norm_high))
    norm_s1 = Normalisation(tuple(pairs["norm_low"]), tuple(pairs["norm_high"]))
    untrained = get_method("simclr", num_classes=5, **{**options, "in_channels": 12,
                                                        "pair_channels": 2})  # fmt: skip
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(args.out)},
                               "pretrain_seconds": seconds,
                               "s_per_1000_windows": 1000 * seconds / (args.steps * args.batch),
                               "final_loss": header.extra["final_loss"]}  # fmt: skip
    labels = {r["name"]: set(r["labels"].split(";")) for r in rows}
    for name, seg in (("simclr S1<->S2", trained), ("random init", untrained)):
        s2t, s1t = patches(args.data, test, "s2", norm_s2), patches(args.data, test, "s1", norm_s1)
        (p2, z2), (p1, z1) = embed(seg, s2t, False), embed(seg, s1t, True)
        s2k, s1k = (
            patches(args.data, known, "s2", norm_s2),
            patches(args.data, known, "s1", norm_s1),
        )
        (q2, _), (q1, _) = embed(seg, s2k, False), embed(seg, s1k, True)
        kl, tl = [labels[r["name"]] for r in known], [labels[r["name"]] for r in test]
        results[name] = {
            "retrieval_s1_to_s2": retrieval(z1, z2), "retrieval_s2_to_s1": retrieval(z2, z1),
            "chance": 1 / len(test),
            "knn_f1_s1": knn_f1(q1, kl, p1, tl), "knn_f1_s2": knn_f1(q2, kl, p2, tl),
            "knn_f1_both": knn_f1(torch.cat([q1, q2], 1), kl, torch.cat([p1, p2], 1), tl),
        }  # fmt: skip
        log.info("%s: %s", name, results[name])
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
