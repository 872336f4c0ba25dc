"""Re-estimate each scene's class shares before labelling its pixels? (issue 14, exploration)

Tiles 5-6 of dubai_dev hold other class shares than tiles 1-4 (building 20.9% -> 1.9%, water
16.7% -> 47.8%), and the few-shot head learns with class-weighted cross-entropy, i.e. as if
every class were equally common. The textbook correction for a change of class shares (label
shift) is Saerens, Latinne and Decaestecker (Neural Computation, 2002): EM on one scene's
predicted probabilities estimates its class shares q, then each pixel's probabilities are
multiplied by q / p_train and renormalised. Here: the model's ``lcmap suggest-labels`` picks N
patches of tiles 1-4, the default head (or ``--head``) is fine-tuned on them (100 steps, seeds
0-2), and every other labelled 128-px patch of tiles 1-4 is scored plain and with the
correction fitted per scene on that scene's patches (no label read), p_train being the
weighted training shares (uniform where the inverse-frequency weights are not clipped). Tiles
5-6 are not read. Not a product option: this measures whether one is worth it.

Usage:
    python benchmarks/prior_shift.py --out /tmp/prior_shift --budget 20 \\
        --models /tmp/fs/sugg0/resnet18-unet-simclr.lcmap
"""

import sys

import numpy as np
import suggest_choice
import torch
from quality_cas import CLASSES, choice_run

from lcmap.fewshot.suggest import suggest_labels
from lcmap.methods._supervised import class_weights


def em_shares(probs: torch.Tensor, train: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """Saerens et al.'s EM: the class shares of (N, K) probabilities predicted under the
    training shares ``train``."""
    shares = train.clone()
    for _ in range(steps):
        adjusted = probs * (shares / train)
        new = (adjusted / adjusted.sum(1, keepdim=True)).mean(0)
        if torch.allclose(new, shares, atol=1e-6):
            return new
        shares = new
    return shares


def corrected(probs: torch.Tensor, scenes: list[str], train: torch.Tensor) -> torch.Tensor:
    """(N, S, S) classes of (N, K, S, S) patch probabilities, each scene's patches rescaled by
    that scene's EM shares."""
    out = torch.empty(probs.shape[0], *probs.shape[2:], dtype=torch.long)
    for scene in sorted(set(scenes)):
        idx = [i for i, s in enumerate(scenes) if s == scene]
        p = probs[idx].double()
        shares = em_shares(p.permute(0, 2, 3, 1).reshape(-1, p.shape[1]), train)
        out[idx] = (p * (shares / train)[None, :, None, None]).argmax(1)
    return out


def main() -> None:
    p = suggest_choice.fewshot_parser(__doc__)
    p.add_argument("--head", default=None, help="finetune --head (none: the model's default)")
    args = p.parse_args()
    scenes, truths = choice_run(args)
    print("| model | scoring | mIoU mean | fine-tuning seeds | IoU building / land / road / "
          "vegetation / water (mean) |\n|---|---|---|---|---|", flush=True)  # fmt: skip
    for i, model in enumerate(args.models):
        x, y, keys = suggest_choice.labelled_patches(model, scenes, truths)
        ranking = args.out / f"model{i}.gpkg"
        frame = suggest_labels(scenes, model, ranking, budget=args.budget,
                               patch_size=suggest_choice.PATCH, device="cpu",
                               overwrite=True)  # fmt: skip
        trained = suggest_choice.trained_keys(frame, args.budget)
        held = [j for j, key in enumerate(keys) if key not in trained]
        labels = y[[j for j, key in enumerate(keys) if key in trained]]
        counts = torch.bincount(labels[labels != 255], minlength=len(CLASSES)).double()
        train = counts * class_weights(labels, len(CLASSES)).double()
        train = train / train.sum()
        found: dict[str, list] = {"plain": [], "EM shares per scene": []}
        for seed in (int(s) for s in args.seeds.split(",")):
            tuned = suggest_choice.tune(model, scenes, truths, ranking, args.budget, seed, args.out,
                                        args.head)  # fmt: skip
            probs = suggest_choice.patch_scores(tuned, x[held])
            found["plain"].append(suggest_choice.patch_metrics(probs.argmax(1), y[held]))
            pred = corrected(probs, [keys[j][0] for j in held], train)
            found["EM shares per scene"].append(suggest_choice.patch_metrics(pred, y[held]))
        for name, metrics in found.items():
            each = " / ".join(f"{m.miou:.3f}" for m in metrics)
            per_class = " / ".join(f"{v:.3f}" for v in np.mean([m.iou for m in metrics], 0))
            print(f"| {model} | {name} | {np.mean([m.miou for m in metrics]):.3f} | {each} | "
                  f"{per_class} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
