"""STEGO quality on dubai_dev next to k-means, in one run (issue: "Quality (in your note)").

1. ``kmeans`` with K clusters: each scene fitted and mapped on its own
   (:func:`lcmap.workflows.evaluate_index.evaluate_index`).
2. For each feature layer: one STEGO model trained on all the index's scenes (labels unused,
   :func:`lcmap.api.train`), then applied to every scene (``evaluate_index(model=...)``).

Scores: Hungarian matching per scene, confusions summed after matching (pooled accuracy and
mIoU, see :func:`lcmap.workflows.evaluate_index.evaluate_index`), so k-means and STEGO are
pooled the same way.

Example:
    python benchmarks/quality_stego.py -k 5 --layers 8 12 --json stego_dubai.json
    python benchmarks/quality_stego.py --every 18 -k 5 --layers 8 --crf   # CRF cost and effect
    python benchmarks/quality_stego.py --tiles 1,2,3,4 --every 6 -k 5 --layers 8 -p window_stride=56
"""

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / ".." / "shared" / "data" / "dubai_dev" / "index.csv"
DINOV2 = ROOT / ".." / "shared" / "weights" / "dinov2_vits14_imgfocus.safetensors"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def subset_index(index: Path, every: int, out: Path, tiles: set[str] | None = None) -> Path:
    """Every ``every``-th row of ``index`` (absolute paths), written to ``out``; with ``tiles``
    only the scenes of those dubai_dev tiles (``dubai_t3_4`` is tile 3) are counted."""
    with index.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if tiles:
        rows = [r for r in rows if r["name"].split("_")[1].lstrip("t") in tiles]
    keep = rows[::every]
    for row in keep:
        for key in ("scene", "truth"):
            row[key] = str((index.parent / row[key]).resolve())
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(keep)
    return out


def summary(name: str, result: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Pooled figures of an :class:`~lcmap.eval.report.IndexResult`."""
    m = result.metrics
    return {
        "run": name,
        "scenes": len(result.scenes),
        "pooled_accuracy": round(m.accuracy, 4),
        "pooled_miou": round(m.miou, 4),
        "seconds": round(result.seconds, 1),
        **extra,
    }


def main() -> int:
    from lcmap import api
    from lcmap.eval import read_index
    from lcmap.workflows.evaluate_index import evaluate_index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=INDEX)
    parser.add_argument("--every", type=int, default=1, help="take every N-th scene")
    parser.add_argument("--tiles", help="only these dubai_dev tiles, e.g. 1,2,3,4 (choices on 1-4)")
    parser.add_argument("-k", "--classes", type=int, default=5)
    parser.add_argument("--layers", type=int, nargs="+", default=[8, 12])
    parser.add_argument("--backbone", default="vit_small_patch14_dinov2")
    parser.add_argument("--weights", type=Path, default=DINOV2)
    parser.add_argument("-p", "--param", action="append", default=[], help="stego KEY=VALUE")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--crf", action="store_true", help="also map with the dense CRF (same model) and time it"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lcmap-stego-quality-") as tmp:
        workdir = Path(tmp)
        index = args.index
        tiles = set(args.tiles.split(",")) if args.tiles else None
        if args.every > 1 or tiles:
            index = subset_index(args.index, args.every, workdir / "index.csv", tiles)
        scenes = [e.scene for e in read_index(index)]
        kmeans = evaluate_index(index, method=api.MethodSpec("kmeans", args.classes))
        rows.append(summary("kmeans", kmeans, {}))
        print(json.dumps(rows[-1]), flush=True)
        params = {k: _value(v) for k, v in (p.split("=", 1) for p in args.param)}
        for layer in args.layers:
            model = workdir / f"stego_{layer}.lcmap"
            options = {
                "backbone": args.backbone,
                "weights": str(args.weights),
                "feature_layer": layer,
                **params,
            }
            start = time.perf_counter()
            api.train(
                scenes,
                model,
                method=api.MethodSpec("stego", classes=args.classes, options=options),
                run=api.RunSpec(device=args.device),
            )
            train_s = time.perf_counter() - start
            for crf in (False, True) if args.crf else (False,):
                result = evaluate_index(
                    index,
                    method=api.MethodSpec("stego", options={"crf": True} if crf else None),
                    model=model,
                    run=api.RunSpec(device=args.device),
                )
                mpx = sum(s.result.confusion.sum() for s in result.scenes) / 1e6
                rows.append(
                    summary(
                        f"stego block {layer}{' + CRF' if crf else ''}",
                        result,
                        {
                            "options": params,
                            "train_s": round(train_s, 1),
                            "map_s_per_mpx": round(result.seconds / mpx, 2),
                        },
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
    print("\n| run | scenes | pooled accuracy | pooled mIoU | train s | map s/Mpx |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['scenes']} | {r['pooled_accuracy']} | {r['pooled_miou']} | "
            f"{r.get('train_s', '')} | {r.get('map_s_per_mpx', '')} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
