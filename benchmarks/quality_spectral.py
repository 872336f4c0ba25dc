"""Spectral k-means on every kind of scene: lcmap's ``kmeans`` against the textbook pixel k-means.

Sets: ``mr_dev``'s three (Gaofen-2 RGB 4 m, PlanetScope RGB ~4 m, Landsat 8 B,G,R,NIR 30 m),
and ``dubai_dev`` tiles 1-4 at 0.5 m and resampled to 2, 5 and 10 m (bands averaged, truth by
mode), with tiles 5-6 at 0.5 m to report. Each scene is fitted on its own with k = its set's
class count; clusters are matched to classes per scene (Hungarian, one to one) and the
confusions pooled per set (mIoU), as ``lcmap evaluate-index`` does.

Rows, all in the same run:

- ``pixel raw``: scikit-learn ``KMeans(k, n_init=4)`` on the raw band values (the textbook);
- ``pixel z-score``: the same on each band's z-score;
- ``pixel 2-98 clipped``: the same on each band stretched between its 2nd and 98th percentiles
  and clipped to 0..1 (the stretch lcmap's networks read scenes through);
- ``pixel 2-98``: that stretch without the clip (what lcmap's ``kmeans`` reads);
- ``pixel chromaticity`` (``--rows chromaticity``): the same on each band over the pixel's
  mean band, beside that mean, all stretched 2-98 % (colour apart from brightness);
- ``lcmap kmeans``: ``lcmap segment -m kmeans -k K`` (``--lcmap CHECKOUT`` to run another
  version's; ``-p KEY=VALUE`` passes kmeans options);
- ``lcmap primaps`` (``--rows primaps``), ``lcmap dino_kmeans`` (``--rows dino_kmeans``): the ViT
  methods with the offline DINOv2-S/14 weights, each scene fitted on its own (slow on a CPU:
  about a minute a scene); ``-p`` passes their options too (``-p spectral_weight=1``).

Example:
    python benchmarks/quality_spectral.py --json results/quality_spectral.json
    git worktree add /tmp/before OLD_COMMIT
    python benchmarks/quality_spectral.py --lcmap /tmp/before --rows lcmap --tag before
"""

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from checkout import use_checkout
from numpy.typing import NDArray
from rasterio.enums import Resampling

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DINOV2 = SHARED.parent / "weights" / "dinov2_vits14_imgfocus.safetensors"
VIT_METHODS = ("primaps", "dino_kmeans")
PIXEL_ROWS = ("pixel raw", "pixel z-score", "pixel 2-98 clipped", "pixel 2-98")


def scenes_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every scene as {set, name, scene, truth, k, factor (resampling of a dubai scene)}."""
    found = []
    with open(SHARED / "mr_dev" / "index.csv") as f:
        for row in csv.DictReader(f):
            found.append(
                {
                    "set": row["set"],
                    "name": row["name"],
                    "scene": SHARED / "mr_dev" / row["scene"],
                    "truth": SHARED / "mr_dev" / row["truth"],
                    "k": len(row["classes"].split(",")),
                    "factor": 1,
                }
            )
    with open(SHARED / "dubai_dev" / "index.csv") as f:
        for row in csv.DictReader(f):
            tile = int(row["name"].split("_t")[1].split("_")[0])
            levels = [(f"dubai 0.5 m tiles {'1-4' if tile <= 4 else '5-6'}", 1)]
            if tile <= 4:
                levels += [
                    (f"dubai {gsd} m tiles 1-4", f) for gsd, f in (("2", 4), ("5", 10), ("10", 20))
                ]
            for name, factor in levels:
                found.append(
                    {
                        "set": name,
                        "name": row["name"],
                        "scene": SHARED / "dubai_dev" / row["scene"],
                        "truth": SHARED / "dubai_dev" / row["truth"],
                        "k": len(row["classes"].split(",")),
                        "factor": factor,
                    }
                )
    if args.sets:
        found = [s for s in found if any(w in s["set"] for w in args.sets)]
    by_set: dict[str, int] = {}
    kept = []
    for s in found:  # every N-th scene of each set
        by_set[s["set"]] = by_set.get(s["set"], -1) + 1
        if by_set[s["set"]] % args.every == 0:
            kept.append(s)
    return kept


def coarse(item: dict[str, Any], work: Path) -> tuple[Path, Path]:
    """The scene and truth at ``factor`` times the pixel size (bands averaged, truth by mode)."""
    if item["factor"] == 1:
        return item["scene"], item["truth"]
    out = []
    for path, resampling, suffix in (
        (item["scene"], Resampling.average, "scene"),
        (item["truth"], Resampling.mode, "truth"),
    ):
        target = work / f"{item['name']}_{item['factor']}_{suffix}.tif"
        if not target.exists():
            with rasterio.open(path) as src:
                h, w = src.height // item["factor"], src.width // item["factor"]
                data = src.read(out_shape=(src.count, h, w), resampling=resampling)
                profile = {
                    **src.profile,
                    "height": h,
                    "width": w,
                    "transform": src.transform * src.transform.scale(src.width / w, src.height / h),
                }
                profile.pop("blockxsize", None), profile.pop("blockysize", None)
                profile["tiled"] = False
                with rasterio.open(target, "w", **profile) as dst:
                    dst.write(data)
                    dst.update_tags(**src.tags())
        out.append(target)
    return out[0], out[1]


def pixel_kmeans(
    scene: Path, k: int, scale: Callable[[NDArray[np.float64]], NDArray[np.float64]]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Labels of textbook k-means on the scaled bands of the valid pixels."""
    from sklearn.cluster import KMeans

    with rasterio.open(scene) as src:
        data = src.read().astype(np.float64)
        valid = src.dataset_mask() > 0
    x = scale(data[:, valid].T)
    labels = np.full(valid.shape, -1, dtype=np.int64)
    labels[valid] = KMeans(k, n_init=4, random_state=0).fit_predict(x)
    return labels, valid


def zscore(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)


def stretch(clip: bool) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    def apply(x: NDArray[np.float64]) -> NDArray[np.float64]:
        low, high = np.percentile(x, (2, 98), axis=0)
        out = (x - low) / np.maximum(high - low, 1e-9)
        return np.clip(out, 0, 1) if clip else out

    return apply


def chromaticity(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each band over the pixel's mean band (its colour, whatever its brightness), beside that
    mean, all stretched 2-98 % unclipped: the features of a spectral-angle-like k-means."""
    brightness = x.mean(1, keepdims=True)
    ratios = x / np.maximum(brightness, 1e-9)
    return np.concatenate([stretch(False)(ratios), stretch(False)(brightness)], axis=1)


SCALES = {
    "pixel raw": lambda x: x,
    "pixel z-score": zscore,
    "pixel 2-98 clipped": stretch(True),
    "pixel 2-98": stretch(False),
    "pixel chromaticity": chromaticity,
}


def lcmap_map(
    scene: Path, k: int, work: Path, method: str, options: dict[str, Any]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    from lcmap import api

    out = work / "map.tif"
    api.segment(
        scene,
        api.OutputSpec(out, overwrite=True),
        method=api.MethodSpec(method, classes=k, options=options),
        run=api.RunSpec(device="cpu", seed=0),
    )
    with rasterio.open(out) as src:
        labels = src.read(1).astype(np.int64)
        valid = labels != 255
    return labels, valid


def confusion(labels: NDArray[np.int64], ok: NDArray[np.bool_], truth_path: Path, k: int) -> Any:
    """The scene's Hungarian-matched (k, k + 1) class confusion."""
    from lcmap.eval.metrics import class_confusion, match_clusters

    with rasterio.open(truth_path) as src:
        truth = src.read(1).astype(np.int64)
    keep = ok & (truth != 255) & (truth < k)
    present = sorted(int(c) for c in np.unique(truth[keep]))
    pairs = np.zeros((k, k), dtype=np.int64)
    np.add.at(pairs, (labels[keep], truth[keep]), 1)
    pairs = pairs[:, present]  # the classes this scene has: leftover clusters count as wrong
    clusters = list(range(k))
    mapping = match_clusters(clusters, present, pairs)
    return class_confusion(clusters, present, pairs, mapping, list(range(k)))


def miou(matrix: Any) -> float:
    from lcmap.eval.metrics import compute_metrics

    return float(compute_metrics(matrix).miou)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["pixel", "lcmap"],
        help="pixel, chromaticity, lcmap, primaps, dino_kmeans",
    )
    parser.add_argument("--sets", nargs="+", help="only sets whose name holds one of these")
    parser.add_argument("--every", type=int, default=1, help="take every N-th scene of each set")
    parser.add_argument("--tag", default="", help="a name for this run's lcmap row")
    parser.add_argument("--lcmap", metavar="CHECKOUT", help="import lcmap from this checkout")
    parser.add_argument("-p", dest="params", action="append", default=[], help="kmeans KEY=VALUE")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args()
    if args.lcmap:
        use_checkout(args.lcmap)
    options = {}
    for item in args.params:
        key, _, value = item.partition("=")
        options[key] = (
            json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
        )
    tag = f" {args.tag}" if args.tag else ""
    rows = [r for r in PIXEL_ROWS if "pixel" in args.rows]
    rows += ["pixel chromaticity"] if "chromaticity" in args.rows else []
    rows += [f"lcmap kmeans{tag}"] if "lcmap" in args.rows else []
    rows += [f"lcmap {m}{tag}" for m in VIT_METHODS if m in args.rows]
    pooled: dict[tuple[str, str], Any] = {}
    seconds: dict[str, float] = dict.fromkeys(rows, 0.0)
    with tempfile.TemporaryDirectory(prefix="lcmap-spectral-") as tmp:
        work = Path(tmp)
        for item in scenes_of(args):
            scene, truth = coarse(item, work)
            for row in rows:
                start = time.perf_counter()
                if row in SCALES:
                    labels, ok = pixel_kmeans(scene, item["k"], SCALES[row])
                elif row.startswith("lcmap kmeans"):
                    labels, ok = lcmap_map(scene, item["k"], work, "kmeans", options)
                else:
                    method = row.split()[1]
                    weights = {"weights": str(DINOV2), **options}
                    labels, ok = lcmap_map(scene, item["k"], work, method, weights)
                seconds[row] += time.perf_counter() - start
                matrix = confusion(labels, ok, truth, item["k"])
                key = (item["set"], row)
                pooled[key] = matrix if key not in pooled else pooled[key] + matrix
    sets = sorted(
        {s for s, _ in pooled}, key=lambda s: (not s.startswith(("gid", "space", "zion")), s)
    )
    table = [
        {"set": s, "row": r, "miou": round(miou(pooled[(s, r)]), 4)} for s in sets for r in rows
    ]
    print("| set | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for s in sets:
        print(f"| {s} | " + " | ".join(f"{miou(pooled[(s, r)]):.3f}" for r in rows) + " |")
    print("seconds: " + ", ".join(f"{r} {t:.0f}" for r, t in seconds.items()), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"options": options, "rows": table}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
