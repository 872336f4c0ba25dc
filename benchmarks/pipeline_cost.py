"""The mapping pipeline's own cost: a null model (constant labels) against kmeans, same scene.

A method that does no work ("null": every pixel class 0, no fitting) goes through everything
else ``lcmap segment`` does: scene statistics, reading tiles with their halo, stitching, writing
the rows, the COG with its MODE overviews. Its time is what the pipeline costs on its own; the
ratio to kmeans mapping the same scene with a saved model (its fit excluded) says how much of a
fast method's time is the pipeline's. Each run in its own process; the best of ``--repeats``.

Example (the scene is one ``segment_throughput.py`` made):
    python benchmarks/segment_throughput.py --sizes 8000 --workdir /tmp/lcmap-bench
    python benchmarks/pipeline_cost.py /tmp/lcmap-bench/naip_8000.tif --json out.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = """
import sys, time
from typing import Any
import torch
from lcmap import api
from lcmap.methods import register_method
from lcmap.methods.base import MethodInfo, Segmenter

class Null(Segmenter):
    info = MethodInfo(name="null", summary="every pixel class 0", needs_fit=False)
    num_classes = 2
    in_channels = None
    halo = 0
    window = None
    def predict(self, batch):
        return torch.zeros((batch.shape[0], 2, *batch.shape[-2:]))
    def predict_tile_labels(self, batch):
        return torch.zeros((batch.shape[0], *batch.shape[-2:]), dtype=torch.uint8)
    def config(self) -> dict[str, Any]:
        return {}
    def state_dict(self):
        return {}
    def load_state_dict(self, state):
        pass

register_method("null")(lambda num_classes=None, **kw: Null())
scene, out, how = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
if how == "null":
    api.segment(scene, api.OutputSpec(out, overwrite=True), method="null")
else:
    api.segment(scene, api.OutputSpec(out, overwrite=True), model=how)
print(time.perf_counter() - start)
"""


def timed(args: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=True
        )
        best = min(best, float(done.stdout.strip().splitlines()[-1]))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scene", type=Path, help="a large scene")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the best is kept")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    from lcmap import api

    with tempfile.TemporaryDirectory(prefix="lcmap-pipeline-") as tmp:
        work = Path(tmp)
        model = work / "kmeans.lcmap"
        api.segment(
            args.scene,
            work / "fit.tif",
            save_model=model,
            method=api.MethodSpec("kmeans", classes=6),
        )
        null = timed([str(args.scene), str(work / "null.tif"), "null"], args.repeats)
        kmeans = timed([str(args.scene), str(work / "kmeans.tif"), str(model)], args.repeats)
        import rasterio

        with rasterio.open(args.scene) as src:
            mpx = src.width * src.height / 1e6
    row = {
        "scene": str(args.scene),
        "mpx": round(mpx, 1),
        "null_s": round(null, 2),
        "kmeans_map_s": round(kmeans, 2),
        "null_share_of_kmeans": round(null / kmeans, 3),
        "null_s_per_mpx": round(null / mpx, 4),
        "kmeans_s_per_mpx": round(kmeans / mpx, 4),
    }
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
