"""Scene | kmeans | the deep methods, side by side, as a user would first look at them.

Each scene is segmented twice with ``lcmap.api.segment``, each method fitted on that scene
alone (what ``lcmap segment SCENE`` does): ``kmeans``, ``dino_kmeans`` and ``primaps``
(DINOv2-S/14 of ``../shared/weights``; ``primaps`` is the default when those weights are
present). One PNG per scene in
``--out``, drawn in the colour tables the maps carry (not committed: they are large).

Example:
    python benchmarks/pictures.py --out /tmp/lcmap_pictures
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_stego import DINOV2
from tiling_consistency import picture

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
METHODS = ["kmeans", "dino_kmeans", "primaps"]
#: (scene, display bands, K): three dubai_dev scenes of the held-out tiles, NAIP (R, G, B,
#: NIR; shown as RGB), Landsat (SWIR1, NIR, Red, Green; shown as that false colour).
SCENES = [
    ("dubai_dev/scenes/dubai_t5_4.tif", [1, 2, 3], 5),
    ("dubai_dev/scenes/dubai_t5_8.tif", [1, 2, 3], 5),
    ("dubai_dev/scenes/dubai_t6_4.tif", [1, 2, 3], 5),
    ("naip/naip_m_4709963_se_14_1_20200831.tif", [1, 2, 3], 6),
    ("landsat/landsat_2020.tif", [1, 2, 3], 6),
]


def main() -> int:
    from lcmap import api

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=DINOV2)
    names = [Path(rel).stem for rel, _, _ in SCENES]
    parser.add_argument("--scenes", nargs="+", choices=names, default=names, help="these only")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lcmap-pictures-") as tmp:
        for rel, show, k in SCENES:
            scene = DATA / rel
            if scene.stem not in args.scenes:
                continue
            maps = {}
            for method in args.methods:
                options = {"weights": str(args.weights)} if method != "kmeans" else None
                out = Path(tmp) / f"{scene.stem}_{method}.tif"
                api.segment(
                    scene,
                    api.OutputSpec(out, overwrite=True),
                    method=api.MethodSpec(method, classes=k, options=options),
                )
                maps[f"{method}, k = {k}"] = out
            png = args.out / f"{scene.stem}.png"
            picture(scene, show, maps, png)
            print(png, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
