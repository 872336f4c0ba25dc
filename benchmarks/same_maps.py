"""Are the maps the same as at another commit? sha256 of the label rasters of fixed runs.

Segments 384 x 384 px crops of three dubai_dev scenes with kmeans, a tiny stego (DINOv2-S/14
from ``../shared/weights/``, block 8, 20 crops, 2 head steps) and a tiny cas, each at a fixed
seed, and prints one sha256 per map of the label values (not of the file: tags hold
versions and paths). Run it at two commits and compare the lines (refactors must not change
them).

Example:
    python benchmarks/same_maps.py > after.txt
    PYTHONPATH=/path/to/old/checkout python benchmarks/same_maps.py > before.txt
    diff before.txt after.txt
"""

import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
SCENES = ["dubai_t1_1", "dubai_t3_4", "dubai_t5_2"]
RUNS = {
    "kmeans": {"method": "kmeans", "classes": 5},
    "stego": {"method": "stego", "classes": 5, "options": {
        "backbone": "vit_small_patch14_dinov2",
        "weights": str(SHARED / "weights" / "dinov2_vits14_imgfocus.safetensors"),
        "feature_layer": 8, "crops": 20, "steps": 2}},
    "cas": {"method": "cas", "classes": 5, "options": {
        "width": 4, "depth": 2, "embed_dim": 8, "patch_size": 32, "ae_steps": 10,
        "dec_steps": 10, "pool_size": 32, "kmeans_patches": 32, "update_interval": 5}},
}  # fmt: skip


def crop(scene: Path, out: Path, size: int = 384) -> Path:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(scene) as src:
        window = Window(0, 0, min(size, src.width), min(size, src.height))
        profile = {**src.profile, "width": int(window.width), "height": int(window.height),
                   "transform": src.window_transform(window)}  # fmt: skip
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        profile["tiled"] = False
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


def main() -> int:
    import rasterio

    from lcmap import api

    with tempfile.TemporaryDirectory(prefix="lcmap-same-maps-") as tmp:
        work = Path(tmp)
        for name in SCENES:
            scene = crop(SHARED / "data" / "dubai_dev" / "scenes" / f"{name}.tif",
                         work / f"{name}.tif")  # fmt: skip
            for run, kwargs in RUNS.items():
                out = work / f"{name}_{run}.tif"
                api.segment(scene, out, seed=7, device="cpu", **kwargs)
                with rasterio.open(out) as src:
                    digest = hashlib.sha256(src.read(1).tobytes()).hexdigest()
                print(f"{name} {run} {digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
