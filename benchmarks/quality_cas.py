"""CAS few-shot quality on the Dubai scenes: the shape of Table 1 and Fig. 7 of Ghosh et al.,
"Clustering augmented Self-Supervised Learning".

Protocol (``../shared/data/dubai_dev``; truth 0 building, 1 land, 2 road, 3 vegetation,
4 water, 255 ignored):

1. Pre-train one ``cas`` model on the scenes of tiles 1-4 (labels unused).
2. Fine-tune with N labelled 128-px patches (N = 10, 20, 50) from tiles 1-4, chosen at random
   (seeded) or by ``lcmap suggest-labels`` (the first N of the suggestion ranking: the ranking
   interleaves the clusters rank by rank in the allocation's priority order, so its first N
   rows are what a budget of N would give), with init ``random`` (OnlyLabeled), ``autoencoder``
   and ``cas``, for 3 seeds.
3. Evaluate on tiles 5-6 with the labels as classes (no matching): pooled mean F1 and mIoU
   over the evaluation pixels; mean and standard deviation over the seeds.
4. Unsupervised: the CAS cluster map and a k-means map (same K, fitted on tiles 1-4) on the
   same pixels, scored with pooled Hungarian (one-to-one) and majority matching.

CPU budget: the defaults are shrunk to run in about 20-30 minutes on 2 shared cores (one torch
thread: on a loaded 2-core machine two threads are many times slower): a small UNet (width 8,
depth 3), pre-training on 64-px patches for 300 + 300 steps, fine-tuning for 100 steps on
random 64-px crops of the labelled 128-px patches, evaluation on the central 512 x 512 crop of
each evaluation scene. Predictions are made on the whole crop at once (what seamless stitching
approximates). Every figure and the settings go to ``results.json``; ``table.md`` and
``few_shot.png`` summarise them.

Usage:
    python benchmarks/quality_cas.py --out /tmp/cas_quality
    python benchmarks/quality_cas.py --out /tmp/cas_quality --quick   # a 2-minute smoke run
"""

import argparse
import csv
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from lcmap import api
from lcmap.errors import NoNodataWarning
from lcmap.eval.metrics import (
    ConfusionCounter,
    Metrics,
    class_confusion,
    compute_metrics,
    match_clusters,
)
from lcmap.io.scene import Normalisation, read_window
from lcmap.methods.loading import load_model
from lcmap.workflows.finetune import finetune
from lcmap.workflows.patch_choice import parse_clusters
from lcmap.workflows.suggest import suggest_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "dubai_dev"
CLASSES = ["building", "land", "road", "vegetation", "water"]
log = logging.getLogger("quality_cas")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Folder for models and results.")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--budgets", default="10,20,50")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--inits", default="random,autoencoder,cas")
    p.add_argument("--sampling", default="random,suggested")
    p.add_argument("--clusters", type=int, default=8, help="CAS and k-means clusters K.")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--embed-dim", type=int, default=16)
    p.add_argument("--pretrain-patch", type=int, default=64)
    p.add_argument("--ae-steps", type=int, default=300)
    p.add_argument("--dec-steps", type=int, default=300)
    p.add_argument("--recon-weight", type=float, default=10.0, help="lambda of eq. 8.")
    p.add_argument("--ft-steps", type=int, default=100)
    p.add_argument("--ft-crop", type=int, default=64)
    p.add_argument("--patch", type=int, default=128, help="Labelled patch side (pixels).")
    p.add_argument("--eval-crop", type=int, default=512, help="0 = whole evaluation scenes.")
    p.add_argument("--threads", type=int, default=1)
    add_suggest_options(p)
    p.add_argument("--retrain", action="store_true", help="Re-train the CAS model if present.")
    p.add_argument("--quick", action="store_true", help="Tiny settings for a smoke run.")
    args = p.parse_args()
    if args.quick:
        args.budgets, args.seeds, args.ae_steps, args.dec_steps = "10", "0", 20, 20
        args.ft_steps, args.eval_crop = 10, 256
    return args


def add_suggest_options(p: argparse.ArgumentParser) -> None:
    """``--suggest-clusters`` and ``--suggest-pick``, read back by :func:`suggest_options`."""
    p.add_argument(
        "--suggest-clusters",
        default="model",
        help="suggest-labels --clusters: model (Ghosh et al.'s rule, the default), "
        "budget (TypiClust) or N.",
    )
    p.add_argument(
        "--suggest-pick",
        default="diverse",
        choices=["diverse", "nearest"],
        help="suggest-labels --pick (nearest: Ghosh et al.'s choice).",
    )


def suggest_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``suggest_labels`` keywords the ``--suggest-*`` options ask for."""
    return {"clusters": parse_clusters(args.suggest_clusters), "pick": args.suggest_pick}


def choice_run(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Set up a script that chooses on tiles 1-4 (``args.threads``, ``args.out``, warnings
    off); the scenes of tiles 1-4 and their truths."""
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, _ = read_index(DATA)
    return [DATA / r["scene"] for r in rows], [DATA / r["truth"] for r in rows]


def read_index(
    data: Path, train: tuple[int, ...] = (1, 2, 3, 4), test: tuple[int, ...] = (5, 6)
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The index rows of the ``train`` tiles and of the ``test`` tiles."""
    with open(data / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))

    def tile(row: dict[str, str]) -> int:
        return int(row["name"].split("_")[1][1:])  # dubai_tT_N

    return [r for r in rows if tile(r) in train], [r for r in rows if tile(r) in test]


def eval_crops(data: Path, rows: list[dict[str, str]], crop: int) -> list[dict[str, Any]]:
    """Raw bands, validity and truth of the evaluation crops (central ``crop`` square)."""
    out = []
    for row in rows:
        with rasterio.open(data / row["scene"]) as src, rasterio.open(data / row["truth"]) as t:
            if crop and crop < min(src.width, src.height):
                window = Window((src.width - crop) // 2, (src.height - crop) // 2, crop, crop)
            else:
                window = Window(0, 0, src.width, src.height)
            raw, valid = read_window(src, window, list(range(1, src.count + 1)))
            truth = t.read(1, window=window)
        out.append({"name": row["name"], "raw": raw, "valid": valid, "truth": truth})
    return out


def predict_scores(
    model_path: Path,
    crops: list[dict[str, Any]],
    adapt: Callable[[Any, torch.Tensor], None] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> list[torch.Tensor]:
    """The model's (K, H, W) scores on each crop (its bands and normalisation), computed on
    ``device`` and returned on the CPU; ``adapt`` (method, crop) first, if given;
    ``overrides``: options of how it maps (``load_model``)."""
    method, header = load_model(model_path, overrides)
    method.to(torch.device(device))
    norm = Normalisation(tuple(header.norm_low), tuple(header.norm_high))
    scores = []
    for c in crops:
        bands = [b - 1 for b in header.bands]
        x = torch.from_numpy(norm.apply(c["raw"][bands], c["valid"]))[None].to(device)
        if adapt is not None:
            adapt(method, x)
        with torch.inference_mode():
            # predict_tiles: predict, or fixed windows blended for a windowed method
            scores.append(method.predict_tiles(x)[0].cpu())
    return scores


def predict_labels(
    model_path: Path,
    crops: list[dict[str, Any]],
    adapt: Callable[[Any, torch.Tensor], None] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> list[np.ndarray]:
    scores = predict_scores(model_path, crops, adapt, overrides, device)
    return [s.argmax(dim=0).numpy().astype(np.int64) for s in scores]


def pooled_metrics(pairs: Iterable[tuple[Any, Any]], match: str) -> Metrics:
    """The metrics of (prediction, truth) pixel arrays pooled, the predicted labels matched to
    the classes by ``match`` (pixels without truth already left out)."""
    counter = ConfusionCounter()
    for pred, truth in pairs:
        counter.add(np.asarray(pred), np.asarray(truth).astype(np.int64))
    clusters, classes, counts = counter.matrix()
    mapping = match_clusters(clusters, classes, counts, match)  # type: ignore[arg-type]
    return compute_metrics(
        class_confusion(clusters, classes, counts, mapping, list(range(len(CLASSES))))
    )


def score(preds: list[np.ndarray], crops: list[dict[str, Any]], match: str) -> dict[str, float]:
    keeps = [(c["truth"] != 255) & c["valid"] for c in crops]
    m = pooled_metrics(
        ((pred[k], c["truth"][k]) for pred, c, k in zip(preds, crops, keeps, strict=True)), match
    )
    return {"accuracy": m.accuracy, "miou": m.miou, "mean_f1": m.mean_f1}


def summarise(runs: list[dict[str, Any]], budgets: list[int]) -> str:
    lines = [
        "| init | sampling | "
        + " | ".join(f"N={n} F1" for n in budgets)
        + " | "
        + " | ".join(f"N={n} mIoU" for n in budgets)
        + " |",
        "|---|---|" + "---|" * (2 * len(budgets)),
    ]
    groups = sorted({(r["init"], r["sampling"]) for r in runs})
    for init, sampling in groups:
        cells = []
        for key in ("mean_f1", "miou"):
            for n in budgets:
                vals = [
                    r[key]
                    for r in runs
                    if (r["init"], r["sampling"], r["patches"]) == (init, sampling, n)
                ]
                cells.append(f"{np.mean(vals):.3f} ({np.std(vals):.3f})" if vals else "-")
        lines.append(f"| {init} | {sampling} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], budgets: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"random": "tab:grey", "autoencoder": "tab:blue", "cas": "tab:red"}
    styles = {"random": "-", "suggested": "--"}
    for ax, key, label in zip(axes, ("mean_f1", "miou"), ("mean F1", "mIoU"), strict=True):
        for init, sampling in sorted({(r["init"], r["sampling"]) for r in runs}):
            means, stds, ns = [], [], []
            for n in budgets:
                vals = [
                    r[key]
                    for r in runs
                    if (r["init"], r["sampling"], r["patches"]) == (init, sampling, n)
                ]
                if vals:
                    ns.append(n)
                    means.append(np.mean(vals))
                    stds.append(np.std(vals))
            ax.errorbar(
                ns,
                means,
                yerr=stds,
                capsize=3,
                color=colours.get(init, "k"),
                linestyle=styles.get(sampling, ":"),
                marker="o",
                label=f"{init}, {sampling}",
            )
        ax.set_xlabel("labelled 128-px patches")
        ax.set_ylabel(label)
        ax.set_xticks(budgets)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Dubai tiles 5-6: fine-tuned UNet by initialisation and patch choice")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("lcmap").setLevel(logging.WARNING)
    if not (args.data / "index.csv").exists():
        sys.exit(f"{args.data / 'index.csv'} not found; the Dubai data is needed.")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=NoNodataWarning)  # the Dubai JPEG tiles have none
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    budgets = [int(v) for v in args.budgets.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    inits = args.inits.split(",")
    samplings = args.sampling.split(",")
    train_rows, eval_rows = read_index(args.data)
    train_scenes = [args.data / r["scene"] for r in train_rows]
    train_truth = [args.data / r["truth"] for r in train_rows]
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    cas_path = out / "cas.lcmap"
    t0 = time.perf_counter()
    cas_options = {
        "width": args.width,
        "depth": args.depth,
        "embed_dim": args.embed_dim,
        "patch_size": args.pretrain_patch,
        "batch_size": 16,
        "ae_steps": args.ae_steps,
        "dec_steps": args.dec_steps,
        "pool_size": 256,
        "kmeans_patches": 512,
        "update_interval": 25,
        "recon_weight": args.recon_weight,
    }
    if args.retrain or not cas_path.exists():
        log.info("pre-training cas on %d scenes: %s", len(train_scenes), cas_options)
        api.train(
            train_scenes,
            api.OutputSpec(cas_path, overwrite=True),
            method=api.MethodSpec("cas", classes=args.clusters, options=cas_options),
            run=api.RunSpec(device="cpu", seed=0),
        )
    timings["pretrain_cas_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    km_path = out / "kmeans.lcmap"
    if args.retrain or not km_path.exists():
        api.train(
            train_scenes,
            api.OutputSpec(km_path, overwrite=True),
            method=api.MethodSpec("kmeans", classes=args.clusters),
            run=api.RunSpec(device="cpu", seed=0),
        )
    timings["pretrain_kmeans_s"] = time.perf_counter() - t0

    crops = eval_crops(args.data, eval_rows, args.eval_crop)
    eval_pixels = int(sum(((c["truth"] != 255) & c["valid"]).sum() for c in crops))
    log.info("evaluation: %d crops, %d labelled pixels", len(crops), eval_pixels)

    t0 = time.perf_counter()
    unsupervised = {}
    for name, path in (("cas", cas_path), ("kmeans", km_path)):
        preds = predict_labels(path, crops)
        unsupervised[name] = {m: score(preds, crops, m) for m in ("hungarian", "majority")}
        log.info("unsupervised %s: %s", name, unsupervised[name])
    timings["unsupervised_eval_s"] = time.perf_counter() - t0

    suggested = out / "suggested.gpkg"
    if "suggested" in samplings:
        t0 = time.perf_counter()
        frame = suggest_labels(
            train_scenes,
            cas_path,
            api.OutputSpec(suggested, overwrite=True),
            patches=api.PatchSpec(count=max(budgets), size=args.patch),
            **suggest_options(args),
            run=api.RunSpec(device="cpu"),
        )
        timings["suggest_s"] = time.perf_counter() - t0
        log.info(
            "suggested %d patches; per cluster %s",
            len(frame),
            frame.groupby("cluster").size().to_dict(),
        )

    runs: list[dict[str, Any]] = []
    results_path = out / "results.json"
    tuned = out / "tuned.lcmap"
    t_ft = time.perf_counter()
    for sampling in samplings:
        for init in inits:
            for n in budgets:
                for seed in seeds:
                    t0 = time.perf_counter()
                    finetune(
                        cas_path,
                        train_scenes,
                        api.LabelSpec(train_truth, class_names=CLASSES),
                        api.OutputSpec(tuned, overwrite=True),
                        init=init,
                        patches=api.PatchSpec(
                            count=n,
                            file=suggested if sampling == "suggested" else None,
                            size=args.patch,
                        ),
                        options={"steps": args.ft_steps, "crop_size": args.ft_crop},
                        run=api.RunSpec(device="cpu", seed=seed, batch_size=8),
                    )
                    t1 = time.perf_counter()
                    m = score(predict_labels(tuned, crops), crops, "none")
                    run = {
                        "sampling": sampling,
                        "init": init,
                        "patches": n,
                        "seed": seed,
                        **m,
                        "train_s": t1 - t0,
                        "eval_s": time.perf_counter() - t1,
                    }
                    runs.append(run)
                    log.info(
                        "%s",
                        {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()},
                    )
                    results_path.write_text(json.dumps({"runs": runs}, indent=1))
    timings["finetune_and_eval_s"] = time.perf_counter() - t_ft
    timings["total_s"] = time.perf_counter() - t_all

    table = summarise(runs, budgets)
    unsup = "\n".join(
        ["| map | match | accuracy | mIoU | mean F1 |", "|---|---|---|---|---|"]
        + [
            f"| {name} (K={args.clusters}) | {match} | {s['accuracy']:.3f} | {s['miou']:.3f} "
            f"| {s['mean_f1']:.3f} |"
            for name, by in unsupervised.items()
            for match, s in by.items()
        ]
    )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    (out / "table.md").write_text(
        f"## Few-shot fine-tuning (mean (std) over seeds {seeds})\n\n{table}\n\n"
        f"## Unsupervised maps, pooled over the evaluation crops\n\n{unsup}\n\n"
        f"Evaluation pixels: {eval_pixels}. Timings (s): "
        f"{ {k: round(v, 1) for k, v in timings.items()} }\n"
    )
    results_path.write_text(
        json.dumps(
            {
                "settings": settings,
                "cas_options": cas_options,
                "eval_pixels": eval_pixels,
                "timings": timings,
                "unsupervised": unsupervised,
                "runs": runs,
                "torch_threads": torch.get_num_threads(),
                "command": " ".join(sys.argv),
            },
            indent=1,
            default=lambda v: None if isinstance(v, float) and math.isnan(v) else v,
        )
    )
    plot(runs, budgets, out / "few_shot.png")
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
