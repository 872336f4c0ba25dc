"""Temple's Table 4 shape on the Dubai scenes: encoders from scratch vs pre-trained by contrast.

Protocol (``../shared/data/dubai_dev``; truth 0 building, 1 land, 2 road, 3 vegetation,
4 water, 255 ignored; every choice on tiles 1-4, scores on tiles 5-6):

1. Per encoder, pre-train ``simclr`` on the scenes of tiles 1-4 (labels unused).
2. Fine-tune ``encoder_finetuned`` with N labelled patches (random, seeded) from tiles 1-4:
   rows ``random`` (the same network from scratch), ``simclr frozen``, ``simclr fine-tuned``,
   and the linear head on the frozen encoder (linear evaluation):
   ``random linear`` and ``simclr linear`` (``... linear-bands``: the same head also reading the
   bands; ``... linear-indices``: and every pair of bands' normalised difference; ``...
   linear-texture``: and each band's local standard deviation); 3 seeds.
3. Score tiles 5-6 with the labels as classes (no matching): pooled per-class IoU, mIoU,
   accuracy, mean F1; mean and spread over the seeds.
4. Unsupervised maps of the pre-trained encoders (their k-means probe, K = 5) and k-means
   (fitted on tiles 1-4, same K) on the same pixels, pooled Hungarian matching.
5. Cost: pre-training seconds per 1000 windows (views = 2 per window) on this machine.

Each run keeps every scored crop's confusion matrix in ``results.json``, so that two rows can
be compared crop by crop.

CPU budget (2 shared cores): 64-px windows, 300 pre-training steps of 16 windows, 100
fine-tuning steps of 8 patches, the central 512 x 512 crop of each evaluation scene.
Swin-UNet takes 224-px windows only and is left out of the CPU default (``--encoders``).

Also: ``--sampling suggested`` trains on the first N patches of ``lcmap suggest-labels``' ranking
(by the row's pre-trained model, the random rows by the first one: rows of one model share their
patches), and ``--models NAME=PATH`` adds rows for ready few-shot models fine-tuned at their own
defaults (``--stego WEIGHTS`` first trains one on tiles 1-4: a STEGO head on the frozen
DINOv2-S/14). ``--tiles 1,2,3:4`` trains on tiles 1-3 and scores tile 4 (a fold for choices
that stay inside tiles 1-4), ``--pretrain-tiles`` pre-trains on other tiles than the
labelled ones (labels unused), and ``--tta`` also scores each tuned model mapping each window
under its 8 symmetries (rows '..., tta').

Usage:
    python benchmarks/quality_encoders.py --out /tmp/enc_quality
    python benchmarks/quality_encoders.py --out /tmp/q --encoders "" --sampling random,suggested \
        --models simclr=/tmp/enc_quality/resnet18-unet-simclr.lcmap \
        --stego ../shared/weights/dinov2_vits14_imgfocus.safetensors
    python benchmarks/quality_encoders.py --out /tmp/enc_quality --quick   # a smoke run
"""

import argparse
import itertools
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality_cas import (
    CLASSES,
    DATA,
    add_suggest_options,
    eval_crops,
    predict_labels,
    read_index,
    score,
    suggest_options,
)

from lcmap import api
from lcmap.errors import NoNodataWarning
from lcmap.workflows.finetune import finetune
from lcmap.workflows.suggest import suggest_labels

log = logging.getLogger("quality_encoders")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Folder for models and results.")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--encoders", default="unet,resnet18-unet")
    p.add_argument("--budgets", default="20")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--crop",
        type=int,
        default=64,
        help="Window side (pre-training, fine-tuning crops, mapping). 64 for CPU time "
        "in every figure before 2026-12-04's eighteenth session; lcmap's own "
        "default is 128.",
    )
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--pretrain-windows", type=int, default=1024)
    p.add_argument("--pretrain-seed", type=int, default=0, help="Seed of the pre-training.")
    p.add_argument("--rows", default=",".join(ROWS), help="Fine-tuning rows to run.")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--optimizer", default="adam", help="adam or sgd (Ghandali et al.: sgd 1e-3).")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument(
        "--pretrain-options",
        type=json.loads,
        default={},
        metavar="JSON",
        help='Other simclr options, e.g. {"windows": 512}.',
    )
    p.add_argument("--ft-steps", type=int, default=100)
    p.add_argument(
        "--ft-options",
        type=json.loads,
        default={},
        metavar="JSON",
        help='More options of the fine-tuning, e.g. {"lr": 0.003}.',
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="Also score each tuned model mapped under the 8 symmetries.",
    )
    p.add_argument("--patch", type=int, default=128, help="Labelled patch side (pixels).")
    p.add_argument("--eval-crop", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--device", default="cpu", help="Where to pre-train, fine-tune and map (cpu, cuda)."
    )
    add_suggest_options(p)
    p.add_argument(
        "--models",
        nargs="*",
        default=[],
        metavar="NAME=PATH",
        help="Also fine-tune these ready few-shot models (e.g. a stego model on the "
        "frozen DINOv2) at their own defaults: rows 'NAME probe'.",
    )
    p.add_argument(
        "--stego",
        type=Path,
        metavar="WEIGHTS",
        help="Also train a stego model on tiles 1-4 (DINOv2-S/14 from this local "
        "weights file, its defaults otherwise): rows 'stego probe'.",
    )
    p.add_argument(
        "--sampling",
        default="random",
        help="random, suggested (the first N of the model's 'suggest-labels' "
        "ranking over tiles 1-4, Ghosh et al.'s active sampling), or both.",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="Keep pre-trained models already in --out (same settings).",
    )
    p.add_argument(
        "--tiles",
        default="1,2,3,4:5,6",
        metavar="TRAIN:TEST",
        help="Tiles to pre-train and fine-tune on, and tiles to score; a choice "
        "made on tiles 1-4 alone holds one of them out, e.g. 1,2,3:4.",
    )
    p.add_argument(
        "--pretrain-tiles",
        metavar="TILES",
        help="Tiles to pre-train on (labels unused) if not the training tiles; "
        "1,2,3,4,5,6 learns from the scenes to map too, as a user would.",
    )
    p.add_argument("--quick", action="store_true", help="Tiny settings for a smoke run.")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.pretrain_steps, args.ft_steps, args.eval_crop = "0", 5, 5, 128
        args.pretrain_windows, args.encoders = 64, "unet"
    return args


#: Fine-tuning row -> (pre-training objective, init, frozen encoder, head). A random row
#: (objective None) takes the first pre-trained model's bands, normalisation and patches.
ROWS: dict[str, tuple[str | None, str, bool, str]] = {
    "random": (None, "random", False, "decoder"),
    "simclr frozen": ("simclr", "simclr", True, "decoder"),
    "simclr fine-tuned": ("simclr", "simclr", False, "decoder"),
    "random linear": (None, "random", True, "linear"),
    "simclr linear": ("simclr", "simclr", True, "linear"),
    "random linear-bands": (None, "random", True, "linear-bands"),
    "simclr linear-bands": ("simclr", "simclr", True, "linear-bands"),
    "random linear-indices": (None, "random", True, "linear-indices"),
    "simclr linear-indices": ("simclr", "simclr", True, "linear-indices"),
    "random linear-texture": (None, "random", True, "linear-texture"),
    "simclr linear-texture": ("simclr", "simclr", True, "linear-texture"),
}


def crop_confusions(preds: list[np.ndarray], crops: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per scored crop, its labelled valid pixels counted truth x predicted class, with a last
    column for labels outside the classes."""
    k = len(CLASSES)
    out = []
    for pred, c in zip(preds, crops, strict=True):
        keep = (c["truth"] != 255) & c["valid"]
        cols = np.where((pred >= 0) & (pred < k), pred, k)[keep]
        cells = c["truth"][keep].astype(np.int64) * (k + 1) + cols
        out.append(np.bincount(cells, minlength=k * (k + 1)).reshape(k, k + 1))
    return out


def per_class_iou(confusions: list[np.ndarray]) -> list[float]:
    """Pooled IoU per class (NaN where the class is neither in the truth nor predicted)."""
    k = len(CLASSES)
    conf = np.sum(confusions, axis=0)
    inter = np.diag(conf[:, :k]).astype(float)
    union = conf[:, :k].sum(0) + conf.sum(1) - inter
    return [float(i / u) if u else float("nan") for i, u in zip(inter, union, strict=True)]


def main() -> None:
    args = parse()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("lcmap").setLevel(logging.WARNING)
    if not (args.data / "index.csv").exists():
        sys.exit(f"{args.data / 'index.csv'} not found; the Dubai data is needed.")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=NoNodataWarning)
    out: Path = args.out

    def fewshot_rows(model: Path, encoder: str, row: str, options: dict[str, Any]) -> None:
        """Fine-tune ``model`` with each budget and seed (``options`` to ``finetune``), score
        tiles 5-6 with the labels as classes, add the runs to ``results``."""
        for sampling, n, seed in itertools.product(args.sampling.split(","), budgets, seeds):
            patch_file = None
            if sampling == "suggested":
                patch_file = out / f"{model.stem}-suggested{max(budgets)}.gpkg"
                if not patch_file.exists():  # the ranking uses no label: one per model
                    suggest_labels(
                        scenes,
                        model,
                        patch_file,
                        patches=api.PatchSpec(count=max(budgets), size=args.patch),
                        run=api.RunSpec(device=args.device),
                        **suggest_options(args),
                    )
            tuned = out / "tuned.lcmap"
            t0 = time.perf_counter()
            tuning = dict(options)
            init = tuning.pop("init", None)
            batch_size = tuning.pop("batch_size", None)
            finetune(
                model,
                scenes,
                api.LabelSpec(truths, class_names=CLASSES),
                api.OutputSpec(tuned, overwrite=True),
                patches=api.PatchSpec(n, patch_file, args.patch),
                init=init,
                options=tuning or None,
                run=api.RunSpec(device=args.device, seed=seed, batch_size=batch_size),
            )
            name = row + (", suggested" if patch_file else "")
            seconds = time.perf_counter() - t0
            scored = [(name, predict_labels(tuned, crops, device=args.device))]
            if args.tta:
                scored.append(
                    (name + ", tta", predict_labels(tuned, crops, None, {"tta": True}, args.device))
                )
            for name, preds in scored:
                confusions = crop_confusions(preds, crops)
                run = {
                    "encoder": encoder,
                    "row": name,
                    "patches": n,
                    "seed": seed,
                    **score(preds, crops, "none"),
                    "iou": per_class_iou(confusions),
                    "seconds": seconds,
                    "confusions": [c.tolist() for c in confusions],
                }
                results["runs"].append(run)
                log.info("%s", {k: v for k, v in run.items() if k not in ("iou", "confusions")})
            (out / "results.json").write_text(json.dumps(results, indent=1))

    out.mkdir(parents=True, exist_ok=True)
    budgets = [int(v) for v in args.budgets.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]

    def tiles(text: str) -> tuple[int, ...]:
        return tuple(int(t) for t in text.split(","))

    train_tiles, test_tiles = (tiles(t) for t in args.tiles.split(":"))
    train_rows, eval_rows = read_index(args.data, train_tiles, test_tiles)
    pretrain_rows = train_rows
    if args.pretrain_tiles:
        pretrain_rows = read_index(args.data, tiles(args.pretrain_tiles))[0]
    scenes = [args.data / r["scene"] for r in train_rows]
    truths = [args.data / r["truth"] for r in train_rows]
    pretrain_scenes = [args.data / r["scene"] for r in pretrain_rows]
    crops = eval_crops(args.data, eval_rows, args.eval_crop)
    results: dict[str, Any] = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "crops": [c["name"] for c in crops],
        "pretrain": {},
        "unsupervised": {},
        "runs": [],
    }

    km = out / "kmeans.lcmap"
    api.train(
        scenes,
        api.OutputSpec(km, overwrite=True),
        method=api.MethodSpec("kmeans", classes=5),
        run=api.RunSpec(device=args.device, seed=0),
    )
    results["unsupervised"]["kmeans"] = score(
        predict_labels(km, crops, device=args.device), crops, "hungarian"
    )
    log.info("kmeans: %s", results["unsupervised"]["kmeans"])

    for encoder in filter(None, args.encoders.split(",")):
        models = {}
        for objective in ("simclr",):
            path = out / f"{encoder}-{objective}.lcmap"
            options = {
                "encoder": encoder,
                "crop_size": args.crop,
                "steps": args.pretrain_steps,
                "windows": args.pretrain_windows,
                "batch_size": args.batch,
                "optimizer": args.optimizer,
                "lr": args.lr,
                "temperature": args.temperature,
                **args.pretrain_options,
            }
            t0 = time.perf_counter()
            models[objective] = path
            if args.reuse and path.exists():  # pre-trained by an earlier run with these settings
                log.info("%s: reused", path.stem)
                continue
            header = api.train(
                pretrain_scenes,
                api.OutputSpec(path, overwrite=True),
                method=api.MethodSpec("simclr", classes=5, options=options),
                run=api.RunSpec(device=args.device, seed=args.pretrain_seed),
            )
            seconds = time.perf_counter() - t0
            windows = args.pretrain_steps * args.batch  # 0 steps: the weights as they are
            results["pretrain"][path.stem] = {
                "seconds": seconds,
                "final_loss": header.extra["final_loss"],
                "s_per_1000_windows": 1000 * seconds / windows if windows else float("nan"),
            }
            unsup = score(predict_labels(path, crops, device=args.device), crops, "hungarian")
            results["unsupervised"][path.stem] = unsup
            log.info(
                "%s: pre-trained in %.0f s, loss %s; unsupervised %s",
                path.stem,
                seconds,
                header.extra["final_loss"],
                unsup,
            )
        for row in args.rows.split(","):
            objective, init, frozen, head = ROWS[row]
            model = models.get(objective) if objective else next(iter(models.values()), None)
            if model is None:
                continue
            options = {
                "init": init,
                "freeze_encoder": frozen,
                "head": head,
                "steps": args.ft_steps,
                "batch_size": 8,
                **args.ft_options,
            }
            fewshot_rows(model, encoder, row, options)
    ready = [(name, Path(path)) for name, path in (m.split("=", 1) for m in args.models)]
    if args.stego:
        stego = out / "stego.lcmap"
        options = {"backbone": "vit_small_patch14_dinov2", "weights": str(args.stego)}
        api.train(
            scenes,
            api.OutputSpec(stego, overwrite=True),
            method=api.MethodSpec("stego", classes=5, options=options),
            run=api.RunSpec(device=args.device),
        )
        ready.append(("stego", stego))
    for name, path in ready:
        fewshot_rows(path, name, f"{name} probe", {})
    print(table(results, budgets))
    (out / "table.md").write_text(table(results, budgets))


def table(results: dict[str, Any], budgets: list[int]) -> str:
    lines = [
        "| encoder | row | N | mIoU (spread) | accuracy | mean F1 | "
        + " | ".join(f"IoU {c}" for c in CLASSES)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(CLASSES),
    ]
    keys = sorted(
        {(r["encoder"], r["row"], r["patches"]) for r in results["runs"]},
        key=lambda t: (t[0], t[2]),
    )
    for encoder, row, n in keys:
        rs = [
            r
            for r in results["runs"]
            if (r["encoder"], r["row"], r["patches"]) == (encoder, row, n)
        ]
        miou = [r["miou"] for r in rs]
        iou = np.nanmean([r["iou"] for r in rs], axis=0)
        lines.append(
            f"| {encoder} | {row} | {n} | {np.mean(miou):.3f} ({np.min(miou):.3f}-"
            f"{np.max(miou):.3f}) | {np.mean([r['accuracy'] for r in rs]):.3f} | "
            f"{np.mean([r['mean_f1'] for r in rs]):.3f} | "
            + " | ".join(f"{v:.3f}" for v in iou)
            + " |"
        )
    lines += ["", "| unsupervised (K = 5, Hungarian) | accuracy | mIoU |", "|---|---|---|"]
    lines += [
        f"| {k} | {v['accuracy']:.3f} | {v['miou']:.3f} |"
        for k, v in results["unsupervised"].items()
    ]
    lines += ["", "| pre-training | s / 1000 windows | final loss |", "|---|---|---|"]
    lines += [
        f"| {k} | {v['s_per_1000_windows']:.1f} | {v['final_loss'] or float('nan'):.3f} |"
        for k, v in results["pretrain"].items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
