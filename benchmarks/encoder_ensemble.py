"""Do encoders pre-trained with different seeds map better together? (issue 14, exploration)

The held-out quality of the default few-shot head swings with the SimCLR pre-training seed
(0.30-0.49 mIoU on tiles 5-6 with the same patches rule). A deep ensemble (Lakshminarayanan et
al., NeurIPS 2017) averages the class probabilities of models trained from different seeds,
the standard answer to seed variance. Here: the first model's ``lcmap suggest-labels`` picks N
patches of tiles 1-4; each model's default head (or ``--head``) is fine-tuned on those same
patches (100 steps, seeds 0-2); each model alone and the mean of their softmax outputs are
scored on every other labelled 128-px patch of tiles 1-4 and on the tiles 5-6 crops of
``quality_encoders.py`` (central 512 px, ``--match none``). Not a product option: this
measures whether one is worth it.

Usage:
    python benchmarks/encoder_ensemble.py --out /tmp/ensemble --budget 20 \\
        --models /tmp/fs/sugg0/resnet18-unet-simclr.lcmap /tmp/fs/sugg1/resnet18-unet-simclr.lcmap
"""

import sys
from typing import Any

import numpy as np
import torch
from quality_cas import DATA, choice_run, eval_crops, predict_scores, read_index, score
from suggest_choice import (
    PATCH,
    fewshot_parser,
    labelled_patches,
    patch_metrics,
    patch_scores,
    trained_keys,
    tune,
)

from lcmap.fewshot.suggest import suggest_labels


def main() -> None:
    p = fewshot_parser(__doc__)
    p.add_argument("--head", default=None, help="finetune --head (none: each model's default)")
    args = p.parse_args()
    scenes, truths = choice_run(args)
    crops = eval_crops(DATA, read_index(DATA)[1], 512)
    ranking = args.out / "patches.gpkg"
    frame = suggest_labels(scenes, args.models[0], ranking, budget=args.budget, patch_size=PATCH,
                           device="cpu", overwrite=True)  # fmt: skip
    trained = trained_keys(frame, args.budget)
    patches = {model: labelled_patches(model, scenes, truths) for model in args.models}
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        sum14: torch.Tensor | None = None
        sum56: list[Any] = [0.0] * len(crops)
        for model in args.models:
            x, y, keys = patches[model]
            held = [j for j, key in enumerate(keys) if key not in trained]
            tuned = tune(model, scenes, truths, ranking, args.budget, seed, args.out, args.head)
            p14 = patch_scores(tuned, x[held])
            p56 = predict_scores(tuned, crops)
            y14 = y[held]
            single = (patch_metrics(p14.argmax(1), y14).miou,
                      score([s.argmax(0).numpy() for s in p56], crops, "none")["miou"])  # fmt: skip
            rows.setdefault(f"{model} alone", []).append(single)
            sum14 = p14 if sum14 is None else sum14 + p14
            sum56 = [a + b for a, b in zip(sum56, p56, strict=True)]
        assert sum14 is not None
        both = (patch_metrics(sum14.argmax(1), y14).miou,
                score([s.argmax(0).numpy() for s in sum56], crops, "none")["miou"])  # fmt: skip
        rows.setdefault(f"ensemble of {len(args.models)}", []).append(both)
        print(f"seed {seed}: " + "; ".join(f"{k} {v[-1][0]:.3f} / {v[-1][1]:.3f}"
                                           for k, v in rows.items()), flush=True)  # fmt: skip
    print(f"\n| {args.budget} patches | tiles 1-4 mIoU (seeds) | tiles 5-6 mIoU (seeds) |\n"
          "|---|---|---|")  # fmt: skip
    for name, runs in rows.items():
        a, b = np.array(runs).T
        print(
            f"| {name} | {a.mean():.3f} ({' / '.join(f'{v:.3f}' for v in a)}) | "
            f"{b.mean():.3f} ({' / '.join(f'{v:.3f}' for v in b)}) |"
        )


if __name__ == "__main__":
    sys.exit(main())
