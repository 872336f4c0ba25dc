"""Fine-tuning a head on a frozen encoder: each distinct window encoded once, or at every step.

``encoder_finetuned`` memoises a frozen encoder's features while the head trains
(:class:`~lcmap.methods.encoder_finetuned.FrozenFeatures`) for the encoders in ``MEMOISED``.
This times ``train_on`` on 20 random 128-px patches (the few-shot setting: each padded to one
window, so 8 distinct forms) with the memo and without, for the ViT (224-px windows) and the
ResNet-18 (128 px), random weights (speed does not depend on them); the losses must agree.

Usage:
    python benchmarks/finetune_speed.py --steps 100 --threads 2
"""

import argparse
import time

import numpy as np
import torch

from lcmap.methods import encoder_finetuned
from lcmap.methods.encoder_finetuned import build
from lcmap.nets.encoder_unet import FIXED_SIZE


def timed(encoder: str, memo: bool, steps: int, x: torch.Tensor, y: torch.Tensor) -> tuple:
    seg = build(3, encoder=encoder, in_channels=3, crop_size=FIXED_SIZE.get(encoder, 128),
                steps=steps, seed=0)  # fmt: skip
    cls = type(seg.net.encoder)
    encoder_finetuned.MEMOISED = (cls,) if memo else ()
    t0 = time.perf_counter()
    losses = seg.train_on(x, y)
    return time.perf_counter() - t0, losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encoders", default="dinov2-vits14,resnet18-unet")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 3, 128, 128, generator=gen)
    y = torch.randint(0, 3, (20, 128, 128), generator=gen)
    print("| encoder | steps of 8 | with memo (s) | without (s) | ratio | losses agree |")
    print("|---|---|---|---|---|---|")
    for encoder in args.encoders.split(","):
        timed(encoder, True, 2, x, y)  # warm-up
        with_s, with_l = timed(encoder, True, args.steps, x, y)
        without_s, without_l = timed(encoder, False, args.steps, x, y)
        agree = np.allclose(with_l, without_l, atol=1e-5)
        print(f"| {encoder} | {args.steps} | {with_s:.1f} | {without_s:.1f} | "
              f"{with_s / without_s:.2f} | {agree} |")  # fmt: skip


if __name__ == "__main__":
    main()
