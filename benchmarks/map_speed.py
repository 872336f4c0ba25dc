"""Mapping time of simclr, encoder_finetuned, primaps and stego, to compare two code versions.

Trains (once, fixed seeds, kept in ``--out``) a small simclr model on the sample NAIP scene, a
simclr encoder fine-tuned on dubai_dev's ``dubai_t1_1`` (its truth raster, 6 patches), and a
primaps and a stego model on the NAIP scene (with the offline DINOv2 weights), maps each
scene with its model (one warm-up, then the best of ``--repeats`` timed runs) and writes the
maps into ``--out``. With ``--against DIR`` it also counts the pixels where the maps differ
from another run's.

Run it under each code version (``--lcmap CHECKOUT`` imports lcmap from another checkout)::

    git worktree add /tmp/before OLD_COMMIT
    python benchmarks/map_speed.py --out /tmp/ms --tag before --lcmap /tmp/before
    python benchmarks/map_speed.py --out /tmp/ms --tag after --against /tmp/ms/before
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import rasterio
from checkout import use_checkout

ROOT = Path(__file__).resolve().parent.parent
NAIP = ROOT / "sample_data" / "naip_2020_rgbn.tif"
DUBAI = ROOT / ".." / "shared" / "data" / "dubai_dev"
DINOV2 = ROOT / ".." / "shared" / "weights" / "dinov2_vits14_imgfocus.safetensors"
METHODS = ["simclr", "encoder_finetuned", "primaps", "stego"]


def models(out: Path, wanted: set[str], quick: bool = False) -> dict[str, tuple[Path, Path]]:
    """name -> (scene, model) of the ``wanted`` methods, each trained on first use (``quick``:
    the simclr model with a few steps only, for a smoke run)."""
    from lcmap import api
    from lcmap.workflows.finetune import finetune

    simclr = out / ("simclr-quick.lcmap" if quick else "simclr.lcmap")  # never mixed up
    if "simclr" in wanted and not simclr.exists():
        api.train(
            [NAIP],
            simclr,
            method=api.MethodSpec(
                "simclr",
                classes=6,
                options={
                    "encoder": "resnet18-unet",
                    "steps": 2 if quick else 20,
                    "windows": 8 if quick else 64,
                    "probe_windows": 8 if quick else 16,
                },
            ),
            run=api.RunSpec(device="cpu", seed=0),
        )
    found = {"simclr": (NAIP, simclr)} if "simclr" in wanted else {}
    scene, truth = DUBAI / "scenes" / "dubai_t1_1.tif", DUBAI / "truth" / "dubai_t1_1.tif"
    if "encoder_finetuned" in wanted and scene.exists():
        encoder, tuned = out / "encoder.lcmap", out / "finetuned.lcmap"
        if not tuned.exists():
            api.train(
                [scene],
                encoder,
                method=api.MethodSpec(
                    "simclr",
                    classes=5,
                    options={
                        "encoder": "resnet18-unet",
                        "steps": 10,
                        "windows": 32,
                        "probe_windows": 8,
                    },
                ),
                run=api.RunSpec(device="cpu", seed=0),
            )
            finetune(
                encoder,
                [scene],
                [truth],
                tuned,
                patches=api.PatchSpec(count=6),
                options={"steps": 20},
                run=api.RunSpec(device="cpu", seed=0),
            )
        found["encoder_finetuned"] = (scene, tuned)
    if "primaps" in wanted and DINOV2.exists():
        primaps = out / "primaps.lcmap"
        if not primaps.exists():
            api.train(
                [NAIP],
                primaps,
                method=api.MethodSpec("primaps", classes=6, options={"weights": str(DINOV2)}),
                run=api.RunSpec(device="cpu", seed=0),
            )
        found["primaps"] = (NAIP, primaps)
    if "stego" in wanted and DINOV2.exists():
        stego = out / "stego.lcmap"
        if not stego.exists():
            api.train(
                [NAIP],
                stego,
                method=api.MethodSpec(
                    "stego",
                    classes=6,
                    options={
                        "backbone": "vit_small_patch14_dinov2",
                        "weights": str(DINOV2),
                        "steps": 20,
                        "crops": 40,
                    },
                ),
                run=api.RunSpec(device="cpu", seed=0),
            )
        found["stego"] = (NAIP, stego)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="models and maps")
    parser.add_argument("--tag", required=True, help="this code version's name")
    parser.add_argument("--against", type=Path, help="another run's maps, to count differences")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs; the best is kept")
    parser.add_argument("--lcmap", metavar="CHECKOUT", help="import lcmap from this checkout")
    parser.add_argument("--only", nargs="+", choices=METHODS, help="these methods only")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--quick", action="store_true", help="a few training steps: a smoke run")
    args = parser.parse_args()
    if args.lcmap:
        use_checkout(args.lcmap)
    from lcmap import api

    maps = args.out / args.tag
    maps.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (scene, model) in models(args.out, set(args.only or METHODS), args.quick).items():
        target = maps / f"{name}.tif"
        api.segment(
            scene,
            api.OutputSpec(target, overwrite=True),
            model=model,
            run=api.RunSpec(device="cpu"),
        )  # warm-up
        seconds = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            api.segment(
                scene,
                api.OutputSpec(target, overwrite=True),
                model=model,
                run=api.RunSpec(device="cpu"),
            )
            seconds = min(seconds, time.perf_counter() - start)
        with rasterio.open(target) as src:
            labels = src.read(1)
        row = {
            "method": name,
            "tag": args.tag,
            "seconds": round(seconds, 2),
            "s_per_mpx": round(seconds / (labels.size / 1e6), 2),
        }
        if args.against is not None:
            with rasterio.open(args.against / f"{name}.tif") as src:
                row["pixels_differing"] = int(np.count_nonzero(src.read(1) != labels))
            row["pixels"] = int(labels.size)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
