"""Mapping and training throughput on one device, against the CPU in the same run (issue 17).

* kmeans mapping: ``api.segment`` with one saved kmeans model on a SIZE x SIZE RGBN scene made
  from the real NAIP scene, on the CPU and on ``--device``: Mpx/s each and their ratio, the
  model's busy share of the mapping loop on each, and the same on ``--device`` with no batch
  size (on CUDA: the batch size measured from free memory, ``auto_batch``);
* training: ``single_scene`` (Saha et al., ``--iterations`` updates per batch, 1 epoch) and
  ``cas`` (``--steps`` autoencoder + ``--steps`` clustering steps) on a ``--crop`` square crop
  (1024 px), on ``--device``: seconds, and seconds per megapixel of the crop at those settings.

Each figure is measured after one warm-up run of the same call. With ``--device cpu`` the CPU
rows are measured once (the script is then a check that it runs, as in CI-like conditions).

Usage:
    python benchmarks/device_throughput.py --device cuda --size 8192
    python benchmarks/device_throughput.py --device cpu --size 2048 --iterations 5 --steps 10
    python benchmarks/device_throughput.py --device cpu --quick   # a smoke run
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_log import engine_log
from segment_throughput import make_scene


def timed(fn: Any) -> float:
    fn()  # warm-up (CUDA context, cuDNN autotuning, GDAL cache)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=8192, help="kmeans scene side in pixels")
    parser.add_argument("--iterations", type=int, default=20, help="single_scene updates")
    parser.add_argument("--steps", type=int, default=100, help="cas steps per phase")
    parser.add_argument("--crop", type=int, default=1024, help="training crop side in pixels")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lcmap-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and steps: a smoke run")
    args = parser.parse_args()
    small = {"crop_size": 64, "batch_size": 2} if args.quick else {}
    tiny_cas = {"width": 4, "depth": 2, "pool_size": 32, "kmeans_patches": 32} if args.quick else {}
    if args.quick:
        args.size, args.crop, args.iterations, args.steps = 128, 128, 1, 1

    from lcmap import api

    args.workdir.mkdir(parents=True, exist_ok=True)
    scene, crop = args.workdir / f"naip_{args.size}.tif", args.workdir / f"naip_{args.crop}.tif"
    for path, size in ((scene, args.size), (crop, args.crop)):
        if not path.exists():
            make_scene(path, size)
    model = args.workdir / "device_kmeans.lcmap"
    api.train(
        [scene],
        api.OutputSpec(model, overwrite=True),
        method=api.MethodSpec("kmeans", classes=6),
        run=api.RunSpec(device="cpu"),
    )
    out = args.workdir / "device_map.tif"
    mpx = args.size**2 / 1e6
    rows: list[dict[str, Any]] = []

    def segment(device: str, batch_size: int | None = 16) -> None:
        api.segment(
            scene,
            api.OutputSpec(out, overwrite=True),
            model=model,
            run=api.RunSpec(device=device, batch_size=batch_size),
        )

    devices = ["cpu"] if args.device == "cpu" else ["cpu", args.device]
    busy = {}
    speeds = {}
    for d in devices:
        with engine_log() as engine:
            speeds[d] = mpx / timed(lambda d=d: segment(d))
        busy[d] = engine.figures().get("busy_share")
    rows.append(
        {
            "run": "kmeans segment",
            "size": args.size,
            "batch_size": 16,
            **{f"{d}_mpx_s": round(v, 2) for d, v in speeds.items()},
            **{f"{d}_busy_share": v for d, v in busy.items()},
            "ratio_to_cpu": round(speeds[devices[-1]] / speeds["cpu"], 2),
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    # No batch size: 4 on the CPU, measured from free memory on CUDA.
    with engine_log() as engine:
        seconds = timed(lambda: segment(args.device, None))
    rows.append(
        {
            "run": "kmeans segment, automatic batch",
            "device": args.device,
            "mpx_s": round(mpx / seconds, 2),
            **engine.figures(),
        }
    )
    print(json.dumps(rows[-1]), flush=True)

    crop_mpx = args.crop**2 / 1e6
    trainings = {
        "single_scene": {"iterations": args.iterations, "epochs": 1, **small},
        "cas": {"ae_steps": args.steps, "dec_steps": args.steps, **tiny_cas},
    }
    for method, options in trainings.items():
        target = args.workdir / f"device_{method}.lcmap"

        def train(
            method: str = method, options: dict[str, Any] = options, target: Path = target
        ) -> None:
            api.train(
                [crop],
                api.OutputSpec(target, overwrite=True),
                method=api.MethodSpec(method, options=dict(options)),
                run=api.RunSpec(device=args.device),
            )

        seconds = timed(train)
        rows.append(
            {
                "run": f"{method} train",
                "device": args.device,
                "options": options,
                "seconds": round(seconds, 2),
                "s_per_mpx": round(seconds / crop_mpx, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
