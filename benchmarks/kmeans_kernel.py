"""The k-means scoring kernel alone: eager against ``torch.compile`` on the CPU (issue 17).

A batch of ``--batch`` tiles of ``--tile`` px and 4 bands, random centroids (K = 6, the local
mean over ``--smooth`` px as the product's default), scored by ``KMeansSegmenter.predict_labels``
eagerly and through the compiled kernel the product uses for large runs (``LCMAP_COMPILE=1``):
the first compiled call (compiling, or loading torch's cache), then seconds per batch of each,
and whether the labels are the same bits.

Usage:
    python benchmarks/kmeans_kernel.py
    python benchmarks/kmeans_kernel.py --batch 4 --tile 576 --repeats 5
"""

import argparse
import os
import time

import torch

from lcmap.methods.configs import KMeansConfig
from lcmap.methods.kmeans import KMeansSegmenter, has_cxx_compiler


def per_call(fn: object, x: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)  # type: ignore[operator]
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tile", type=int, default=576)
    p.add_argument("--smooth", type=int, default=KMeansConfig().smooth)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if not has_cxx_compiler():
        raise SystemExit("no C++ compiler: torch.compile cannot build CPU kernels here")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 4, args.tile, args.tile, generator=gen)
    method = KMeansSegmenter.build(6, smooth=args.smooth, in_channels=4)
    planes = 8 if args.smooth else 4
    method.load_state_dict({"centroids": torch.rand(6, planes, generator=gen)})
    with torch.inference_mode():
        eager = method.predict_labels(x)
        eager_s = per_call(method.predict_labels, x, args.repeats)
        os.environ["LCMAP_COMPILE"] = "1"
        method.prepare_mapping(1)
        start = time.perf_counter()
        compiled = method.predict_labels(x)
        first_s = time.perf_counter() - start
        compiled_s = per_call(method.predict_labels, x, args.repeats)
    print(
        f"batch {args.batch} x 4 x {args.tile}^2, smooth {args.smooth}: eager "
        f"{1000 * eager_s:.1f} ms, compiled {1000 * compiled_s:.1f} ms "
        f"({eager_s / compiled_s:.1f}x), first compiled call {first_s:.1f} s, "
        f"same labels: {torch.equal(eager, compiled)}"
    )


if __name__ == "__main__":
    main()
