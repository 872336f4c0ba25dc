"""Throughput of ``segment --method stego`` against the bare backbone forward pass (compute limit).

For each backbone, in one process and on one device:

1. a small STEGO model is trained on the scene (a few head steps: speed does not depend on
   how well the head is trained);
2. ``lcmap.api.segment(scene, model=...)`` maps the scene once to warm up, then again, timed:
   window reads, normalisation, the backbone, the head, bilinear upsampling, the cosine probe,
   blending and the COG output, end to end;
3. the same method's frozen backbone (``StegoSegmenter.features``: band normalisation + ViT
   up to the feature layer) runs over as many ViT windows as the mapping ran (``crop_size`` px each,
   every half window, over every tile's read window), in batches of the method's
   ``window_batch``, on random tensors already on the device, under the same autocast: the
   compute limit.

The figure is the ratio of (2) to (3) in megapixels per second (target on CUDA: 0.7 or more).
``overlap`` is how many windows the mapping runs per window of a non-overlapping cover of the
scene: the price of blending windows (4 at half-window strides) and of tile halos.

Weights: the offline DINOv2-S/14 of ``../shared/weights/`` for ``vit_small_patch14_dinov2``
when present; any other backbone (DINO ViT-S/8 cannot be downloaded here) gets random weights
saved to a timm ``.safetensors`` file, which is as fast as the real ones.

Usage:
    python benchmarks/stego_throughput.py --size 1024                 # CPU figures
    python benchmarks/stego_throughput.py --size 4096 --batch-size 16 --device cuda
    python benchmarks/stego_throughput.py --size 4096 --batch-size auto --device cuda

Each row also has the mapping loop's own figures (``engine_log.py``): the model's busy share of
the loop and, with ``--batch-size auto`` on CUDA, the batch size chosen.
"""

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from engine_log import engine_log
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT / ".." / "shared" / "data" / "naip" / "naip_m_4709963_se_14_1_20200831.tif"
if not NAIP.exists():
    NAIP = ROOT / "sample_data" / "naip_2020_rgbn.tif"
DINOV2 = ROOT / ".." / "shared" / "weights" / "dinov2_vits14_imgfocus.safetensors"
BACKBONES = ["vit_small_patch8_224.dino", "vit_small_patch14_dinov2"]


def make_scene(path: Path, size: int) -> None:
    """An RGB scene of size x size pixels: the NAIP scene's first three bands, mirrored."""
    with rasterio.open(NAIP) as src:
        tile = src.read([1, 2, 3])
        profile = dict(src.profile)
    th, tw = tile.shape[1:]
    rows = np.arange(size) % (2 * th)
    rows = np.where(rows < th, rows, 2 * th - 1 - rows)
    cols = np.arange(size) % (2 * tw)
    cols = np.where(cols < tw, cols, 2 * tw - 1 - cols)
    profile.update(
        width=size,
        height=size,
        count=3,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        photometric="RGB",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(tile[:, rows][:, :, cols], window=Window(0, 0, size, size))


def weights_for(backbone: str, workdir: Path) -> Path:
    """Real offline weights where available, else random ones in a timm safetensors file."""
    if "dinov2" in backbone and DINOV2.exists():
        return DINOV2
    import timm
    from safetensors.torch import save_file

    path = workdir / f"{backbone.replace('.', '_')}_random.safetensors"
    if not path.exists():
        model = timm.create_model(backbone.split(".")[0], pretrained=False, num_classes=0)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def backbone_limit(method: Any, plan: Any, batch_size: int, device: Any, repeats: int = 3) -> float:
    """Seconds for the frozen backbone over the plan's windows, batch by batch.

    Every batch shape is run once first (kernel choice, clocks), then the whole pass is timed
    ``repeats`` times and the median kept: on the H200 a single pass after a one-window warm-up
    gave 21 and 40 Mpx/s for ViT-S/14 in two runs of the same suite.
    """
    import torch

    size, per_call = method.window.size, method.window_batch
    x = torch.rand(per_call, method.in_channels, size, size, device=device)
    autocast: Any = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    total = mapped_windows(method, plan)
    batches = [per_call] * (total // per_call) + ([total % per_call] if total % per_call else [])
    seconds = []
    with torch.inference_mode(), autocast:
        for n in sorted(set(batches)):
            method.features(x[:n])  # warm-up of each batch shape
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for n in batches:
                method.features(x[:n])
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def mapped_windows(method: Any, plan: Any) -> int:
    """ViT windows the mapping runs: every tile's read window, slid at the window stride."""
    size, stride = method.window.size, method.window.stride
    per_side = (plan.read_size - size) // stride + 1
    return len(plan.tiles) * per_side**2


def run(backbone: str, scene: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Train a small model, map the scene (warm, then timed), time the backbone alone."""
    from lcmap import api
    from lcmap.engine import choose_device
    from lcmap.methods.loading import load_model
    from lcmap.tiling import plan_tiles

    device = choose_device(args.device)
    model = workdir / f"{backbone.replace('.', '_')}.lcmap"
    options = {
        "backbone": backbone,
        "weights": str(weights_for(backbone, workdir)),
        "steps": 2,
        "crops": 20,
        "feature_layer": args.feature_layer,
    }
    api.train(
        [scene],
        api.OutputSpec(model, overwrite=True),
        method=api.MethodSpec("stego", classes=5, options=options),
        run=api.RunSpec(device=str(device)),
    )
    out = workdir / "map.tif"
    kwargs = {
        "model": model,
        "run": api.RunSpec(device=str(device), batch_size=args.batch_size),
        "tiling": api.TilingSpec(tile=args.tile),
    }
    target = api.OutputSpec(out, overwrite=True)
    api.segment(scene, target, **kwargs)  # warm-up: cuDNN/oneDNN kernels, caches
    with engine_log() as engine:
        result = api.segment(scene, target, **kwargs)
    method, _ = load_model(model)
    method.to(device)
    with rasterio.open(scene) as src:
        plan = plan_tiles(src.width, src.height, args.tile, method.halo, method.tile_multiple)
        cover = math.ceil(src.width / method.window.size) * math.ceil(
            src.height / method.window.size
        )
    limit_s = backbone_limit(method, plan, args.batch_size, device)
    mpx = result.width * result.height / 1e6
    windows = mapped_windows(method, plan)
    return {
        "backbone": backbone,
        "device": str(device),
        "megapixels": mpx,
        "windows": windows,
        "window": method.window.size,
        "batch_size": args.batch_size,
        **engine.figures(),
        "overlap": round(windows / cover, 2),
        "segment_mpx_s": round(mpx / result.seconds, 3),
        "backbone_mpx_s": round(mpx / limit_s, 3),
        "ratio": round(limit_s / result.seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--feature-layer", type=int, default=None)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument(
        "--batch-size",
        type=lambda v: None if v == "auto" else int(v),
        default=4,
        help="tiles per batch, or auto (chosen from free memory on CUDA)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lcmap-stego-bench-") as tmp:
        workdir = Path(tmp)
        scene = workdir / "scene.tif"
        make_scene(scene, args.size)
        for backbone in args.backbones:
            rows.append(run(backbone, scene, args, workdir))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| backbone | device | windows | overlap | segment Mpx/s | backbone Mpx/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backbone']} | {r['device']} | {r['windows']} x {r['window']} px | "
            f"{r['overlap']} | {r['segment_mpx_s']} | {r['backbone_mpx_s']} | "
            f"{r['ratio']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
