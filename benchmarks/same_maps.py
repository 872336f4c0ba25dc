"""Are the maps the same as at another commit? sha256 of the label rasters of fixed runs.

Segments 384 x 384 px crops of three dubai_dev scenes with kmeans, a tiny stego (DINOv2-S/14
from ``../shared/weights/``, block 8, 20 crops, 2 head steps), a tiny cas, dino_kmeans, a short
primaps (20 EM steps), single_scene and a tiny simclr encoder, and fine-tunes the cas and
simclr models on the crop's truth (``cas_finetuned``, ``encoder_finetuned``, 20 steps), each at
a fixed seed, and prints
one sha256 per map of the label values (not of the file: tags hold versions and paths). Run it
at two commits and compare the lines (refactors must not change them).

``--lcmap CHECKOUT`` imports lcmap from another checkout (``git worktree add``; see
``checkout.py``).

Example:
    git worktree add /tmp/before OLD_COMMIT
    python benchmarks/same_maps.py --lcmap /tmp/before > before.txt
    python benchmarks/same_maps.py > after.txt
    diff before.txt after.txt
"""

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

from checkout import use_checkout

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
SCENES = ["dubai_t1_1", "dubai_t3_4", "dubai_t5_2"]
RUNS = {
    "kmeans": {"method": "kmeans", "classes": 5},
    "stego": {
        "method": "stego",
        "classes": 5,
        "options": {
            "backbone": "vit_small_patch14_dinov2",
            "weights": str(SHARED / "weights" / "dinov2_vits14_imgfocus.safetensors"),
            "feature_layer": 8,
            "crops": 20,
            "steps": 2,
        },
    },
    "cas": {
        "method": "cas",
        "classes": 5,
        "options": {
            "width": 4,
            "depth": 2,
            "embed_dim": 8,
            "patch_size": 32,
            "ae_steps": 10,
            "dec_steps": 10,
            "pool_size": 32,
            "kmeans_patches": 32,
            "update_interval": 5,
        },
    },
    "dino_kmeans": {
        "method": "dino_kmeans",
        "classes": 5,
        "options": {
            "weights": str(SHARED / "weights" / "dinov2_vits14_imgfocus.safetensors"),
            "crops": 8,
        },
    },
    "primaps": {
        "method": "primaps",
        "classes": 5,
        "options": {
            "weights": str(SHARED / "weights" / "dinov2_vits14_imgfocus.safetensors"),
            "crops": 8,
            "em_steps": 20,
            "em_batch": 4,
        },
    },
    "single_scene": {
        "method": "single_scene",
        "classes": 4,
        "options": {"epochs": 1, "iterations": 2},
    },
    "simclr": {
        "method": "simclr",
        "classes": 4,
        "options": {
            "encoder": "unet",
            "crop_size": 64,
            "steps": 3,
            "windows": 8,
            "batch_size": 4,
            "probe_windows": 8,
        },
    },
}


def crop(scene: Path, out: Path, size: int = 384) -> Path:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(scene) as src:
        window = Window(0, 0, min(size, src.width), min(size, src.height))
        profile = {
            **src.profile,
            "width": int(window.width),
            "height": int(window.height),
            "transform": src.window_transform(window),
        }
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        profile["tiled"] = False
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lcmap", metavar="CHECKOUT", help="import lcmap from this checkout (git worktree add)"
    )
    parser.add_argument("--scenes", nargs="+", choices=SCENES, default=SCENES)
    parser.add_argument("--size", type=int, default=384, help="side of the crops in pixels")
    parser.add_argument(
        "--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="these methods only"
    )
    args = parser.parse_args()
    if args.lcmap:
        use_checkout(args.lcmap)
    import rasterio

    from lcmap import api
    from lcmap.workflows.finetune import finetune

    def digest(path: Path) -> str:
        with rasterio.open(path) as src:
            return hashlib.sha256(src.read(1).tobytes()).hexdigest()

    with tempfile.TemporaryDirectory(prefix="lcmap-same-maps-") as tmp:
        work = Path(tmp)
        for name in args.scenes:
            data = SHARED / "data" / "dubai_dev"
            scene = crop(data / "scenes" / f"{name}.tif", work / f"{name}.tif", args.size)
            truth = crop(data / "truth" / f"{name}.tif", work / f"{name}_truth.tif", args.size)
            for run, kwargs in RUNS.items():
                if run not in args.runs:
                    continue
                out = work / f"{name}_{run}.tif"
                model = work / f"{name}_{run}.lcmap"
                fitted = api.MethodSpec(
                    kwargs["method"], classes=kwargs["classes"], options=kwargs.get("options")
                )
                run_spec = api.RunSpec(device="cpu", seed=7)
                api.segment(scene, out, method=fitted, save_model=model, run=run_spec)
                print(f"{name} {run} {digest(out)}", flush=True)
            # Each few-shot method fine-tunes the map's model of its base method on the truth.
            for base, tuned_name in (("cas", "cas_finetuned"), ("simclr", "encoder_finetuned")):
                if base not in args.runs:
                    continue
                tuned = work / f"{name}_{tuned_name}.lcmap"
                finetune(
                    work / f"{name}_{base}.lcmap",
                    [scene],
                    [truth],
                    tuned,
                    patches=api.PatchSpec(count=8, size=64),
                    options={"steps": 20},
                    run=api.RunSpec(device="cpu", seed=7, batch_size=4),
                )
                out = work / f"{name}_{tuned_name}.tif"
                api.segment(scene, out, model=tuned, run=api.RunSpec(device="cpu"))
                print(f"{name} {tuned_name} {digest(out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
