"""Which patches to suggest, chosen on dubai_dev tiles 1-4 alone: the model's clusters or one
cluster per patch of the budget (TypiClust), each cluster's nearest patches or diverse ones.

For each encoder model, ``lcmap suggest-labels`` ranks the 128-px patches of the 36 scenes of
tiles 1-4 with each ``--clusters`` and ``--pick`` choice; ``lcmap finetune --patch-file``
trains the model's default head (for a simclr model a linear layer on the frozen encoder's
embedding, the bands, their normalised differences and their local standard deviations
since the thirteenth session; ``--heads linear,linear-bands`` compares heads, ``linear``, the
embedding alone, being the default before the eleventh session, ``linear-bands`` before the
twelfth and ``linear-indices`` before the thirteenth; ``--inits simclr,random`` compares the
pre-trained encoder with a random one) on the first N, 100 steps (``--steps``), seeds 0-2; the
score is the pooled mIoU over every other labelled 128-px patch of tiles 1-4 (the patches
trained on are left out). Tiles 5-6 are not read.

Usage:
    python benchmarks/suggest_choice.py --out /tmp/suggest_choice \\
        --models /tmp/fs/sugg0/resnet18-unet-simclr.lcmap /tmp/fs/sugg1/resnet18-unet-simclr.lcmap
"""

import argparse
import itertools
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch
from quality_cas import CLASSES, choice_run, pooled_metrics

from lcmap.eval.metrics import Metrics
from lcmap.fewshot.finetune import finetune
from lcmap.fewshot.suggest import parse_clusters, suggest_labels
from lcmap.io.labels import labelled_windows, open_labels
from lcmap.io.scene import open_scene, read_window, resolve_bands
from lcmap.models import load_model, read_header

PATCH = 128


def labelled_patches(
    model: Path, scenes: list[Path], truths: list[Path]
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, int, int]]]:
    """Every whole labelled 128-px patch of the scenes (the model's bands and normalisation),
    its truth (255 = none) and its (scene, row, col)."""
    header = read_header(model)
    norm = header.read_spec().norm
    images, targets, keys = [], [], []
    for scene, truth in zip(scenes, truths, strict=True):
        with open_scene(scene) as src:
            source, handle = open_labels(truth, src)
            bands = resolve_bands(src, header.bands)
            for lw in labelled_windows(source, src.width, src.height, PATCH):
                w = lw.window
                if w.col_off + PATCH > src.width or w.row_off + PATCH > src.height:
                    continue
                data, valid = read_window(src, w, bands)
                target = source.read(w).astype(np.int64)
                target[~valid] = 255
                images.append(norm.apply(data, valid))
                targets.append(target)
                keys.append((scene.stem, int(w.row_off), int(w.col_off)))
            if handle is not None:
                handle.close()
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets)), keys


def patch_scores(tuned: Path, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, K, S, S) of a fine-tuned model on patches."""
    segmenter, _ = load_model(tuned)
    with torch.no_grad():
        return torch.cat([segmenter.predict(x[i : i + 32]) for i in range(0, len(x), 32)])


def patch_metrics(pred: torch.Tensor, y: torch.Tensor) -> Metrics:
    """Pooled metrics of (N, S, S) predicted classes against their truth (255 = none)."""
    keep = y != 255
    return pooled_metrics([(pred[keep].numpy(), y[keep].numpy())], "none")


def trained_keys(frame: gpd.GeoDataFrame, budget: int) -> set[tuple[str, int, int]]:
    """The (scene, row, col) of the first ``budget`` patches of a ``suggest-labels`` frame."""
    chosen = frame.sort_values("order").head(budget)
    return {(r.scene, r.row, r.col) for r in chosen.itertuples()}


def tune(
    model: Path,
    scenes: list[Path],
    truths: list[Path],
    ranking: Path,
    budget: int,
    seed: int,
    out: Path,
    head: str | None = None,
    init: str | None = None,
    steps: int = 100,
) -> Path:
    """``lcmap finetune`` of ``model`` on the first ``budget`` patches of ``ranking`` (100
    steps unless ``steps``, the model's default head and start unless ``head`` and ``init``);
    the tuned model, ``out / tuned.lcmap``."""
    tuned = out / "tuned.lcmap"
    finetune(model, scenes, truths, tuned, class_names=CLASSES, patches=budget,
             patch_file=ranking, patch_size=PATCH, seed=seed, device="cpu", overwrite=True,
             steps=steps, head=head, init=init)  # fmt: skip
    return tuned


def fewshot_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every few-shot choice script takes: ``--out``, ``--models``, ``--budget``
    (patches), ``--seeds`` (fine-tuning) and ``--threads``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", type=Path, nargs="+", required=True)
    p.add_argument("--budget", type=int, default=20)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    return p


def main() -> None:
    p = fewshot_parser(__doc__)
    p.add_argument("--clusters", default="model,budget", help="suggest-labels --clusters values")
    p.add_argument("--picks", default="nearest,diverse", help="suggest-labels --pick values")
    p.add_argument("--heads", default="", help="finetune --head values (none: its default)")
    p.add_argument("--inits", default="", help="finetune --init values (none: its default)")
    p.add_argument("--steps", type=int, default=100, help="fine-tuning steps")
    args = p.parse_args()
    scenes, truths = choice_run(args)
    print("| model | --clusters | --pick | --head | --init | mIoU mean | fine-tuning seeds | IoU "
          "building / land / road / vegetation / water (mean) |\n|---|---|---|---|---|---|---|---|",
          flush=True)  # fmt: skip
    for i, model in enumerate(args.models):
        x, y, keys = labelled_patches(model, scenes, truths)
        for clusters, pick in itertools.product(args.clusters.split(","), args.picks.split(",")):
            ranking = args.out / f"model{i}-{clusters}-{pick}.gpkg"
            frame = suggest_labels(scenes, model, ranking, budget=args.budget, patch_size=PATCH,
                                   clusters=parse_clusters(clusters), pick=pick, device="cpu",
                                   overwrite=True)  # fmt: skip
            trained = trained_keys(frame, args.budget)
            held = [j for j, key in enumerate(keys) if key not in trained]
            heads = args.heads.split(",") if args.heads else [None]
            inits = args.inits.split(",") if args.inits else [None]
            for head, init in itertools.product(heads, inits):
                scores, ious = [], []
                for seed in (int(s) for s in args.seeds.split(",")):
                    tuned = tune(model, scenes, truths, ranking, args.budget, seed, args.out,
                                 head, init, args.steps)  # fmt: skip
                    m = patch_metrics(patch_scores(tuned, x[held]).argmax(1), y[held])
                    scores.append(m.miou)
                    ious.append(m.iou)
                per_class = " / ".join(f"{v:.3f}" for v in np.mean(ious, axis=0))
                each = " / ".join(f"{s:.3f}" for s in scores)
                print(f"| {model} | {clusters} | {pick} | {head or 'default'} | "
                      f"{init or 'default'} | {np.mean(scores):.3f} | {each} | {per_class} |",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
