"""Fine-tuning a head on a frozen encoder: what a step costs, and what two savings give.

Two savings in ``encoder_finetuned``'s head training, each timed against going without it:

- the memo: a frozen encoder's features are kept while the head trains
  (:class:`~lcmap.methods.encoder_finetuned.FrozenFeatures`; ``MEMOISE``), so each distinct
  window is encoded once;
- the factored linear head (since 2026-12-05): the 1 x 1 layer's hypercolumn share is scored
  stage by stage at the stages' own resolution
  (:meth:`~lcmap.nets.encoder_unet.EncoderUNet.hypercolumn_dots`) instead of on the built
  (B, D, H / 4, W / 4) hypercolumn (``literal``: the form training used before).

This times ``train_on`` on 20 random 128-px patches (the few-shot setting: each padded to one
window, so 8 distinct forms) for the ViT (224-px windows; ``--vit-blocks 4`` is the README's
workflow) and the CNNs and Swin (``--encoders``; 128 px, Swin 224), random weights (speed does
not depend on them); the losses of the four runs must agree.

Usage:
    python benchmarks/finetune_speed.py --steps 100 --threads 2 --vit-blocks 1 4
"""

import argparse
import time
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch

from lcmap.methods import encoder_finetuned
from lcmap.methods.encoder_finetuned import build
from lcmap.nets.encoder_unet import FIXED_SIZE, EncoderUNet


@contextmanager
def literal_head() -> Any:
    """The linear head scored on the built hypercolumn, as training did before 2026-12-05."""
    factored = EncoderUNet._linear_scores
    EncoderUNet._linear_scores = lambda self, x, feats: self.head(self.probe_input(x, feats))  # type: ignore[method-assign]
    try:
        yield
    finally:
        EncoderUNet._linear_scores = factored  # type: ignore[method-assign]


def timed(encoder: str, memo: bool, steps: int, x: torch.Tensor, y: torch.Tensor,
          **options: Any) -> tuple[float, list[float]]:  # fmt: skip
    seg = build(3, encoder=encoder, in_channels=3, crop_size=FIXED_SIZE.get(encoder, 128),
                steps=steps, seed=0, **options)  # fmt: skip
    encoder_finetuned.MEMOISE = memo
    t0 = time.perf_counter()
    losses = seg.train_on(x, y)
    return time.perf_counter() - t0, losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encoders", default="dinov2-vits14,resnet18-unet")
    p.add_argument("--vit-blocks", type=int, nargs="+", default=[1],
                   help="the ViT's vit_blocks values to time (README workflow: 4)")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 3, 128, 128, generator=gen)
    y = torch.randint(0, 3, (20, 128, 128), generator=gen)
    print(
        "| encoder | steps of 8 | memo, factored head (s) | memo, literal head (s) | "
        "no memo, factored head (s) | no memo, literal head (s) | losses agree |"
    )
    print("|---|---|---|---|---|---|---|")
    for encoder in args.encoders.split(","):
        vit = encoder == "dinov2-vits14"
        for blocks in args.vit_blocks if vit else [None]:
            options = {"vit_blocks": blocks} if vit else {}
            name = f"{encoder}, vit_blocks={blocks}" if vit else encoder
            timed(encoder, True, 2, x, y, **options)  # warm-up
            seconds, losses = [], []
            for memo in (True, False):
                for literal in (False, True):
                    with literal_head() if literal else nullcontext():
                        s, loss = timed(encoder, memo, args.steps, x, y, **options)
                    seconds.append(f"{s:.1f}")
                    losses.append(loss)
            agree = all(np.allclose(losses[0], other, atol=1e-4) for other in losses[1:])
            print(f"| {name} | {args.steps} | {' | '.join(seconds)} | {agree} |")


if __name__ == "__main__":
    main()
