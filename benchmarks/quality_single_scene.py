"""Quality and CPU cost of ``single_scene`` on dubai_dev, each scene trained on its own.

For every chosen scene and every K, the method is fitted on that scene and maps it
(:func:`lcmap.api.segment`, the paper's setting), the map is scored against the truth with
:func:`lcmap.eval.evaluate` (Hungarian matching on that scene: each scene has its own model, so
cluster ids only mean something within a scene), and the matched class confusion matrices are
summed over the scenes: pooled accuracy and mIoU come from that sum. The same is done for
``kmeans`` when ``--kmeans`` is given, in the same run.

Costs: seconds per megapixel for training (fit) and inference (mapping) as
:class:`lcmap.api.SegmentResult` measures them, on the device given (default CPU).

Example:
    python benchmarks/quality_single_scene.py --scenes dubai_t2_1,dubai_t2_5 -k 5 -k 8 \\
        --kmeans --out results.jsonl
    python benchmarks/quality_single_scene.py --every 9 -k 5 -p iterations=10
    python benchmarks/quality_single_scene.py --combine a.jsonl b.jsonl
"""

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lcmap import api
from lcmap.errors import LcmapWarning
from lcmap.eval import evaluate, read_index
from lcmap.eval.metrics import compute_metrics

DEFAULT_INDEX = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dubai_dev"


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def combine(paths: list[Path]) -> int:
    """Pool earlier runs: sum matched confusions and seconds per (method, K, options)."""
    groups: dict[str, dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            pooled = row.get("pooled")
            key_row = pooled or row
            key = json.dumps([key_row["method"], key_row["k"], key_row["options"]])
            group = groups.setdefault(
                key,
                {"confusion": None, "scenes": [], "mp": 0.0, "fit": 0.0, "map": 0.0, "used": []},
            )
            if pooled:
                conf = np.asarray(pooled["confusion"], dtype=np.int64)
                group["confusion"] = (
                    conf if group["confusion"] is None else group["confusion"] + conf
                )
            else:
                group["scenes"].append(row["scene"])
                group["mp"] += row["megapixels"]
                group["fit"] += row["fit_s_per_mp"] * row["megapixels"]
                group["map"] += row["map_s_per_mp"] * row["megapixels"]
                group["used"].append(row["clusters_used"])
    for key, group in groups.items():
        method, k, options = json.loads(key)
        metrics = compute_metrics(group["confusion"])
        summary = {
            "method": method,
            "k": k,
            "options": options,
            "scenes": group["scenes"],
            "pooled_accuracy": round(metrics.accuracy, 4),
            "pooled_miou": round(metrics.miou, 4),
            "clusters_used": group["used"],
            "fit_s_per_mp": round(group["fit"] / group["mp"], 2),
            "map_s_per_mp": round(group["map"] / group["mp"], 2),
        }
        print("POOLED " + json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one JSON line per (method, K, scene) and a pooled summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX / "index.csv")
    parser.add_argument("--scenes", help="comma-separated scene names (default: all)")
    parser.add_argument("--every", type=int, default=1, help="take every N-th scene of the index")
    parser.add_argument("-k", "--classes", type=int, action="append", help="K (repeatable)")
    parser.add_argument("-p", "--param", action="append", default=[], help="option KEY=VALUE")
    parser.add_argument("--kmeans", action="store_true", help="also run the kmeans baseline")
    parser.add_argument("--skip-single-scene", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--out", type=Path, help="append JSON lines here")
    parser.add_argument(
        "--combine", type=Path, nargs="+", help="pool the results of earlier --out files and exit"
    )
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore", LcmapWarning)  # dubai scenes declare no nodata: expected
    options = {k: _value(v) for k, _, v in (p.partition("=") for p in args.param)}
    entries = read_index(args.index)
    if args.scenes:
        wanted = args.scenes.split(",")
        entries = [e for e in entries if e.name in wanted]
    entries = entries[:: args.every]
    methods = ([] if args.skip_single_scene else ["single_scene"]) + (
        ["kmeans"] if args.kmeans else []
    )
    out = args.out.open("a") if args.out else None
    summary = []
    with tempfile.TemporaryDirectory(prefix="lcmap-bench-") as tmp:
        for method in methods:
            for k in args.classes or [5, 8]:
                pooled = None
                fit_s = map_s = mpix = 0.0
                used = []
                for entry in entries:
                    out_tif = Path(tmp) / f"{entry.name}_{method}_{k}.tif"
                    start = time.perf_counter()
                    result = api.segment(
                        entry.scene,
                        api.OutputSpec(out_tif, overwrite=True),
                        method=api.MethodSpec(
                            method, classes=k, options=options if method == "single_scene" else None
                        ),
                        run=api.RunSpec(device=args.device, seed=args.seed),
                    )
                    ev = evaluate(out_tif, entry.truth, class_names=entry.classes)
                    pooled = ev.confusion if pooled is None else pooled + ev.confusion
                    mp = result.width * result.height / 1e6
                    fit_s, map_s, mpix = (
                        fit_s + result.fit_seconds,
                        map_s + result.seconds,
                        mpix + mp,
                    )
                    used.append(result.classes_used)
                    row = {
                        "method": method,
                        "k": k,
                        "scene": entry.name,
                        "options": options if method == "single_scene" else {},
                        "megapixels": round(mp, 4),
                        "accuracy": round(ev.accuracy, 4),
                        "miou": round(ev.miou, 4),
                        "clusters_used": result.classes_used,
                        "class_pixels": result.class_pixels,
                        "fit_s_per_mp": round(result.fit_seconds / mp, 2),
                        "map_s_per_mp": round(result.seconds / mp, 2),
                        "wall_s": round(time.perf_counter() - start, 1),
                        "threads": torch.get_num_threads(),
                        "device": result.device,
                    }
                    print(json.dumps(row), flush=True)
                    if out:
                        out.write(json.dumps(row) + "\n")
                        out.flush()
                assert pooled is not None
                metrics = compute_metrics(pooled)
                line = {
                    "method": method,
                    "k": k,
                    "scenes": len(entries),
                    "options": options if method == "single_scene" else {},
                    "pooled_accuracy": round(metrics.accuracy, 4),
                    "pooled_miou": round(metrics.miou, 4),
                    "clusters_used": used,
                    "fit_s_per_mp": round(fit_s / mpix, 2),
                    "map_s_per_mp": round(map_s / mpix, 2),
                    "confusion": np.asarray(pooled).tolist(),
                }
                summary.append(line)
                print("POOLED " + json.dumps(line), flush=True)
                if out:
                    out.write(json.dumps({"pooled": line}) + "\n")
                    out.flush()
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
