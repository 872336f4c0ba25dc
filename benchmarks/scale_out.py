"""Scale-out: ``lcmap segment`` in one process vs in parts on a local Dask cluster.

Builds a SIZE x SIZE RGBN scene from the real NAIP scene (``segment_throughput.make_scene``),
fits one kmeans model on it, then applies that model in separate processes:

* ``in-process``: the default streaming engine (the baseline of this run);
* ``parts here``: ``--resume`` alone (parts computed one after another in this process);
* ``--workers 1`` and ``--workers 2``: parts on a new LocalCluster.

For each: wall time, speed-up against the in-process run, where it goes (setup: reading the
model and the scene's statistics, starting the cluster; map; the final COG phase: streamed
staging file vs VRT over the parts, the overhead of part assembly), the number of tasks and
the worker-seconds a task, and the peak RSS of the driver and of the largest worker
(sampled every 0.1 s with psutil, which dask brings). Maps are checked identical.

Usage:
    python benchmarks/scale_out.py --size 16000 --workdir /tmp/lcmap-bench
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_throughput import make_scene

DRIVER = """
import json, sys, time
from lcmap import api
phases = []
class Progress:
    def __call__(self, done, total):
        pass
    def phase(self, name):
        phases.append((name, time.perf_counter()))
start = time.perf_counter()
kwargs = json.loads(sys.argv[3])
r = api.segment(sys.argv[1], api.OutputSpec(sys.argv[2], overwrite=True),
                model=kwargs.pop("model"),
                run=api.RunSpec(device=kwargs.pop("device"), progress=Progress()),
                scale=api.ScaleSpec(**kwargs))
end = time.perf_counter()
(_, map_start), (_, cog_start) = phases[-2:]
print(json.dumps({"seconds": end - start, "setup_seconds": map_start - start,
                  "map_seconds": cog_start - map_start, "cog_seconds": end - cog_start,
                  "parts": r.parts_computed}))
"""


def run(scene: Path, out: Path, kwargs: dict[str, object]) -> dict[str, float]:
    """Run one configuration in its own process tree; wall time, COG phase, peak RSS (MB)."""
    proc = psutil.Popen(
        [sys.executable, "-c", DRIVER, str(scene), str(out), json.dumps(kwargs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    driver_peak, worker_peak = 0.0, 0.0
    while proc.poll() is None:
        try:
            driver_peak = max(driver_peak, proc.memory_info().rss / 2**20)
            for child in proc.children(recursive=True):
                if "spawn_main" in " ".join(child.cmdline()):  # a Dask worker process
                    worker_peak = max(worker_peak, child.memory_info().rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{kwargs} failed: {stderr.decode()[-2000:]}")
    figures = json.loads(stdout.decode().strip().splitlines()[-1])
    return {**figures, "driver_rss_mb": driver_peak, "worker_rss_mb": worker_peak}


def task_payload(scene: Path, model: Path) -> int:
    """Pickled bytes of what one task is sent (its job and part; the model goes once)."""
    import pickle

    from lcmap.io.writer import MapGrid
    from lcmap.methods.loading import load_model
    from lcmap.scale.parts import PartJob, plan_parts
    from lcmap.tiling import plan_tiles

    seg, header = load_model(model)
    with rasterio.open(scene) as src:
        plan = plan_tiles(src.width, src.height, 512, seg.halo, seg.tile_multiple)
        spec = header.read_spec()
        key = {
            "sha": "0" * 64,
            "plan": [plan.width, plan.height, plan.tile, plan.halo, plan.read_size],
            "bands": list(spec.bands),
            "norm": [list(spec.norm.low), list(spec.norm.high)],
            "lcmap": "0.0.0",
        }
        grid = MapGrid.of(src)
        job = PartJob(str(scene), plan, spec, scene.parent / "x.parts", key, grid, 4, "cpu")
    return len(pickle.dumps((job, plan_parts(plan)[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lcmap-bench"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = args.workdir / f"naip_{args.size}.tif"
    if not scene.exists():
        make_scene(scene, args.size)
    model = args.workdir / "scale_kmeans.lcmap"
    if not model.exists():
        from lcmap import api

        api.train(
            [scene],
            model,
            method=api.MethodSpec("kmeans", classes=6),
            run=api.RunSpec(device="cpu"),
        )
    base = {"model": str(model), "device": "cpu"}
    configs = {
        "in-process": {},
        "parts here (--resume)": {"resume": True},
        "--workers 1": {"workers": 1},
        "--workers 2": {"workers": 2},
    }
    rows, maps = [], {}
    for name, extra in configs.items():
        out = args.workdir / f"scale_{len(rows)}.tif"
        figures = run(scene, out, {**base, **extra})
        rows.append({"run": name, **figures})
        with rasterio.open(out) as src:
            maps[name] = src.read(1, out_shape=(1000, 1000))  # a decimated check is enough
        print(json.dumps(rows[-1]), flush=True)
    same = all(np.array_equal(maps["in-process"], m) for m in maps.values())
    mpx = args.size**2 / 1e6
    base_s = rows[0]["seconds"]
    sizes = sorted({(args.workdir / f"scale_{i}.tif").stat().st_size for i in range(len(rows))})
    print(
        f"\n{args.size} x {args.size} px ({mpx:.0f} Mpx), maps identical: {same}, COG bytes "
        f"{sizes}, task payload {task_payload(scene, model)} bytes pickled\n"
    )
    print(
        "| run | wall s | Mpx/s | speed-up | setup s | map s | COG s | tasks | worker-s/task | "
        "driver RSS MB | worker RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        workers = int(str(r["run"]).split()[-1]) if "workers" in str(r["run"]) else 1
        per_task = f"{r['map_seconds'] * workers / r['parts']:.2f}" if r["parts"] else "-"
        worker_rss = f"{r['worker_rss_mb']:.0f}" if r["worker_rss_mb"] else "-"
        print(
            f"| {r['run']} | {r['seconds']:.1f} | {mpx / r['seconds']:.1f} | "
            f"{base_s / r['seconds']:.2f} | {r['setup_seconds']:.1f} | {r['map_seconds']:.1f} | "
            f"{r['cog_seconds']:.1f} | {r['parts'] or '-'} | "
            f"{per_task} | {r['driver_rss_mb']:.0f} | {worker_rss} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"identical": same, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
