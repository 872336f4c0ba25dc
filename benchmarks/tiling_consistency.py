"""Does a map depend on ``--tile``? Agreement, seam rates and cost of one saved model.

One model (trained on the scene unless ``--model`` is given) maps the scene at every
``--tiles`` size. Reported per tile size: seconds per megapixel, and the rate of label
changes between neighbouring pixels on the tile-core boundaries, on the window borders (when
the method has a window) and on the outer rows and columns, each as a ratio to the rate on
the other lines of the same patch phase and to all lines (a seam shows as a ratio well above
1); and the pairwise agreement of the maps. ``--picture`` draws scene | kmeans | the map.
Works on any lcmap commit that has ``api.train`` and ``api.segment`` (to measure "before").

Example:
    python benchmarks/tiling_consistency.py ../shared/data/naip/<scene>.tif -b 1,2,3 -k 6 \\
        --picture naip_tiling.png --json naip_tiling.json
"""

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DINOV2 = ROOT / ".." / "shared" / "weights" / "dinov2_vits14_imgfocus.safetensors"


def change_rate(labels: np.ndarray, lines: np.ndarray) -> float:
    """Rate of label changes across lines ``c`` (pairs ``(c - 1, c)``, rows and columns)."""
    h, w = labels.shape
    cols = lines[(lines >= 1) & (lines < w)]
    rows = lines[(lines >= 1) & (lines < h)]
    changes = np.concatenate(
        [
            (labels[:, cols] != labels[:, cols - 1]).ravel(),
            (labels[rows] != labels[rows - 1]).ravel(),
        ]
    )
    return float(changes.mean()) if changes.size else float("nan")


def seam_figures(
    labels: np.ndarray, tile: int, halo: int, window: dict[str, int] | None, patch: int
) -> dict[str, Any]:
    """Change-rate ratios on tile, window and edge lines (see the module doc)."""
    n = max(labels.shape)
    every = np.arange(1, n)
    base = change_rate(labels, every)
    out: dict[str, Any] = {"rate_all_lines": round(base, 4)}
    tile_lines = np.arange(tile, n, tile)
    groups = {"tile": tile_lines}
    if window:
        stride = window["stride"]
        groups["window"] = np.arange((-halo) % stride or stride, n, stride)
    h, w = labels.shape
    groups["edge"] = np.unique(np.r_[1:5, h - 4 : h, w - 4 : w])
    for name, lines in groups.items():
        rate = change_rate(labels, lines)
        # Same phase of the patch grid, off these lines: patch borders attract label changes.
        step = window["stride"] if window else tile
        same_phase = np.array([c for c in every if c % patch == 0 and c % step != (-halo) % step])
        out[f"{name}_vs_all"] = round(rate / base, 3)
        if name != "edge" and same_phase.size:
            out[f"{name}_vs_patch_borders"] = round(rate / change_rate(labels, same_phase), 3)
    return out


def picture(scene: Path, bands: list[int], maps: dict[str, Path], out: Path) -> None:
    """scene | each map, side by side, in the maps' own colour tables."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio

    with rasterio.open(scene) as src:
        rgb = src.read(bands[:3]).astype(np.float64)
    lo, hi = np.percentile(rgb, [2, 98], axis=(1, 2), keepdims=True)
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-9), 0, 1).transpose(1, 2, 0)
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(6 * (1 + len(maps)), 6))
    axes[0].imshow(rgb)
    axes[0].set_title(scene.name)
    for ax, (name, path) in zip(axes[1:], maps.items(), strict=True):
        with rasterio.open(path) as src:
            labels = src.read(1)
            cmap = src.colormap(1)
        lut = np.array([cmap.get(i, (0, 0, 0, 0))[:3] for i in range(256)], dtype=np.uint8)
        ax.imshow(lut[labels])
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main() -> int:
    import rasterio

    from lcmap import api

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("-b", "--bands", default=None, help="1-based, comma separated")
    parser.add_argument("-k", "--classes", type=int, default=6)
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--model", type=Path, help="a saved model (else stego is trained)")
    parser.add_argument("--backbone", default="vit_small_patch14_dinov2")
    parser.add_argument("--weights", type=Path, default=DINOV2)
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("-p", "--param", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--picture", type=Path, help="scene | kmeans | map PNG")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bands = [int(b) for b in args.bands.split(",")] if args.bands else None
    result: dict[str, Any] = {"scene": args.scene.name, "tiles": {}}
    with tempfile.TemporaryDirectory(prefix="lcmap-tiling-") as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            model = work / "stego.lcmap"
            options = {
                "backbone": args.backbone,
                "weights": str(args.weights),
                "feature_layer": args.layer,
                **{k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)},
            }
            start = time.perf_counter()
            api.train(
                [args.scene],
                model,
                method=api.MethodSpec("stego", classes=args.classes, bands=bands, options=options),
            )
            result["train_s"] = round(time.perf_counter() - start, 1)
        maps: dict[int, np.ndarray] = {}
        for tile in args.tiles:
            out = work / f"map_{tile}.tif"
            start = time.perf_counter()
            res = api.segment(args.scene, out, model=model, tiling=api.TilingSpec(tile=tile))
            seconds = time.perf_counter() - start
            with rasterio.open(out) as src:
                maps[tile] = src.read(1)
                mpx = src.width * src.height / 1e6
            prov = res.provenance
            patch = 14 if "14" in str(prov.get("config", {}).get("backbone", "")) else 8
            result["tiles"][tile] = {
                "s_per_mpx": round(seconds / mpx, 2),
                "planned_tile": prov["tile"],
                "halo": prov["halo"],
                "window": prov.get("window"),
                **seam_figures(maps[tile], prov["tile"], prov["halo"], prov.get("window"), patch),
            }
            print(json.dumps({tile: result["tiles"][tile]}), flush=True)
        result["agreement"] = {
            f"{a} vs {b}": round(float((maps[a] == maps[b]).mean()), 4)
            for a, b in itertools.combinations(args.tiles, 2)
        }
        print(json.dumps(result["agreement"]), flush=True)
        if args.picture:
            km = work / "kmeans.tif"
            api.segment(
                args.scene, km, method=api.MethodSpec("kmeans", classes=args.classes, bands=bands)
            )
            first = args.tiles[0]
            shown = {"kmeans": km, f"stego, --tile {first}": work / f"map_{first}.tif"}
            picture(args.scene, bands or [1, 2, 3], shown, args.picture)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
