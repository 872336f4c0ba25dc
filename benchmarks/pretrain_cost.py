"""Pre-training cost of ``lcmap pretrain`` on a device, against the CPU in the same run.

Runs ``lcmap pretrain`` (SimCLR, ``--encoder``, default
resnet18-unet, Adam, the encoder's default windows: 128 px, 224 for dinov2-vits14) on the sample
NAIP scene twice per batch size, with ``--steps`` and with twice as many steps, and takes the
difference: the marginal seconds per 1000 windows (two views each), free of the fixed cost (imports,
window sampling, the k-means probe, writing the model). The CPU row at batch 16 is the same-run
baseline; every ``--device`` row is also given as its speed-up over it. The fixed cost is about
10-12 s and varies by about a second between runs, so the extra steps must take several seconds for
the difference to mean much (at 4 extra CPU steps and 25 extra GPU steps of batch 16 it did not: 4.2
and 11.3 s per 1000 windows on the same CPU in two runs). ``--cpu-steps 0`` leaves the CPU row out
(an encoder whose CPU steps would cost the device's minutes). dinov2-vits14 is timed on random
weights written to the work folder (its speed does not depend on them, and the offline DINOv2 file
need not travel to the device). To time another checkout through ``PYTHONPATH``, run the script from
outside the repository: ``python -m lcmap`` puts the working folder first on the path.

Usage:
    python benchmarks/pretrain_cost.py --device cuda --steps 50 --batch-sizes 16,64,256
    python benchmarks/pretrain_cost.py --device cpu --steps 4 --batch-sizes 16
    python benchmarks/pretrain_cost.py --device cuda --encoder dinov2-vits14 --cpu-steps 0 \
        --steps 25 --batch-sizes 64
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "sample_data" / "naip_2020_rgbn.tif"


def random_vit_weights(workdir: Path) -> Path:
    """A timm ``.safetensors`` of a randomly initialised DINOv2 ViT-S/14 (for timing only)."""
    import timm
    from safetensors.torch import save_file

    from lcmap.nets.vit_encoder import ARCH

    path = workdir / "random_vits14.safetensors"
    if not path.exists():
        save_file(timm.create_model(ARCH, pretrained=False).state_dict(), str(path))
    return path


def run_pretrain(
    device: str,
    steps: int,
    batch: int,
    out: Path,
    encoder: str,
    weights: Path | None,
) -> float:
    """Wall seconds of one ``lcmap pretrain`` run."""
    cmd = [
        sys.executable,
        "-m",
        "lcmap",
        "pretrain",
        str(SCENE),
        "-o",
        str(out),
        "--overwrite",
        "--encoder",
        encoder,
        *("-p", "optimizer=adam", "-p", f"steps={steps}", "-p", f"batch_size={batch}"),
        "--device",
        device,
        "--seed",
        "0",
        "-q",
    ]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def marginal(
    device: str,
    steps: int,
    batch: int,
    workdir: Path,
    encoder: str,
    weights: Path | None,
) -> dict[str, Any]:
    out = workdir / f"pretrain_{encoder}_{device.replace(':', '')}_{batch}.lcmap"
    short = run_pretrain(device, steps, batch, out, encoder, weights)
    long = run_pretrain(device, 2 * steps, batch, out, encoder, weights)
    per_window = max(long - short, 0.0) / (steps * batch)
    return {
        "encoder": encoder,
        "device": device,
        "batch": batch,
        "steps": [steps, 2 * steps],
        "seconds": [round(short, 2), round(long, 2)],
        "s_per_1000_windows": round(1000 * per_window, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--encoder", default="resnet18-unet")
    parser.add_argument("--steps", type=int, default=50, help="the shorter run's steps")
    parser.add_argument("--batch-sizes", default="16,64,256")
    parser.add_argument(
        "--cpu-steps", type=int, default=10, help="the CPU baseline's steps (0: none)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lcmap-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    weights = random_vit_weights(args.workdir) if args.encoder == "dinov2-vits14" else None
    rows = []
    cpu = None
    if args.cpu_steps > 0:
        cpu = marginal("cpu", args.cpu_steps, 16, args.workdir, args.encoder, weights)
        rows.append(cpu)
        print(json.dumps(cpu), flush=True)
    if args.device != "cpu":
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            row = marginal(args.device, args.steps, batch, args.workdir, args.encoder, weights)
            if cpu is not None and row["s_per_1000_windows"] > 0:
                row["speedup_vs_cpu"] = round(
                    cpu["s_per_1000_windows"] / row["s_per_1000_windows"], 1
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
