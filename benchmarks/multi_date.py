"""Multi-date positive pairs on one NAIP footprint: does a date pair teach date-invariant features?

Protocol (``../shared/data/naip``: the same footprint in 2009, 2015 and 2020, 4 bands, 5 m):

1. Every date is cut into a north half (pre-training) and a south half (test), on the 2020
   grid (other dates through a ``WarpedVRT``).
2. Pre-train ``simclr`` on the north halves three ways, same steps and seed: on the date pair
   2020 <-> 2015 (``lcmap pretrain --pair``: an encoder per date, one projection space, the same
   window of both dates is the positive pair), on 2020 alone (plain SimCLR: two augmented views
   of one date), and not at all (random init).
3. On the south halves: non-overlapping ``--window`` px windows; top-1 retrieval of a window's
   2015 and 2009 versions from its 2020 one among all test windows (cosine of the projections;
   chance 1/N). 2009 is a date no encoder saw. The pair model embeds 2015 and 2009 with its
   partner encoder; the other two embed every date with their one encoder.

Usage:
    python benchmarks/multi_date.py --out /tmp/multi_date
"""

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from cross_sensor import embed, pretrain_parser, quiet_run, retrieval
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from lcmap import api
from lcmap.io.scene import Normalisation
from lcmap.methods import get_method
from lcmap.models import load_model

ROOT = Path(__file__).resolve().parents[1]
NAIP = ROOT / ".." / "shared" / "data" / "naip"
DATES = {"2020": "20200831", "2015": "20150926", "2009": "20090818"}
log = logging.getLogger("multi_date")


def halves(out: Path) -> dict[str, tuple[Path, Path]]:
    """Date -> (north, south) halves on the 2020 grid, written under ``out``."""
    ref_path = NAIP / f"naip_m_4709963_se_14_1_{DATES['2020']}.tif"
    with rasterio.open(ref_path) as ref:
        grid = {"crs": ref.crs, "transform": ref.transform, "width": ref.width,
                "height": ref.height}  # fmt: skip
    cut = grid["height"] // 2
    found = {}
    for date, stamp in DATES.items():
        parts = []
        with (
            rasterio.open(NAIP / f"naip_m_4709963_se_14_1_{stamp}.tif") as src,
            WarpedVRT(src, resampling=rasterio.enums.Resampling.bilinear, **grid) as vrt,
        ):
            south = Window(0, cut, grid["width"], grid["height"] - cut)
            for name, window in (("north", Window(0, 0, grid["width"], cut)), ("south", south)):
                path = out / f"naip_{date}_{name}.tif"
                profile = {"driver": "GTiff", "count": src.count, "dtype": src.dtypes[0],
                           "crs": grid["crs"], "width": int(window.width),
                           "height": int(window.height), "transform": vrt.window_transform(window),
                           "photometric": "MINISBLACK"}  # fmt: skip
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(vrt.read(window=window))
                parts.append(path)
        found[date] = (parts[0], parts[1])
    return found


def windows(path: Path, size: int, norm: Normalisation) -> torch.Tensor:
    """(N, C, size, size): every non-overlapping window of ``path``, normalised."""
    with rasterio.open(path) as src:
        data = src.read(out_dtype="float32")
    tiles = [data[:, r : r + size, c : c + size]
             for r in range(0, data.shape[1] - size + 1, size)
             for c in range(0, data.shape[2] - size + 1, size)]  # fmt: skip
    valid = np.ones(tiles[0].shape[1:], dtype=bool)
    return torch.from_numpy(np.stack([norm.apply(t, valid) for t in tiles]))


def main() -> None:
    p = pretrain_parser(__doc__)
    p.add_argument("--window", type=int, default=64)
    args = p.parse_args()
    quiet_run(args.threads)
    if not NAIP.exists():
        sys.exit(f"{NAIP} not found; the NAIP dates are needed.")
    args.out.mkdir(parents=True, exist_ok=True)
    parts = halves(args.out)
    options = {"encoder": args.encoder, "crop_size": args.window, "steps": args.steps,
               "windows": args.windows, "batch_size": args.batch, "optimizer": "adam",
               "probe_windows": 64}  # fmt: skip
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(args.out)}}
    models: dict[str, Any] = {}
    norms: dict[str, tuple[Normalisation, Normalisation]] = {}
    for name, partners in (("pair 2020<->2015", [parts["2015"][0]]), ("simclr 2020", None)):
        path = args.out / f"{name.split()[0]}.lcmap"
        t0 = time.perf_counter()
        header = api.train([parts["2020"][0]], path, method="simclr", classes=5, seed=args.seed,
                           partners=partners, device="cpu", overwrite=True,
                           options=options)  # fmt: skip
        results[name] = {"pretrain_seconds": time.perf_counter() - t0,
                         "final_loss": header.extra["final_loss"]}  # fmt: skip
        models[name], _ = load_model(path)
        own = Normalisation(tuple(header.norm_low), tuple(header.norm_high))
        pair = header.extra.get("pairs")
        other = Normalisation(tuple(pair["norm_low"]), tuple(pair["norm_high"])) if pair else own
        norms[name] = (own, other)
    models["random init"] = get_method("simclr", num_classes=5, **{**options, "in_channels": 4,
                                                                   "pair_channels": 4})  # fmt: skip
    norms["random init"] = norms["pair 2020<->2015"]
    results["random init"] = {}
    for name, seg in models.items():
        own, other = norms[name]
        _, z2020 = embed(seg, windows(parts["2020"][1], args.window, own), False)
        for date in ("2015", "2009"):
            _, z = embed(seg, windows(parts[date][1], args.window, other), True)
            results[name][f"retrieval_2020_to_{date}"] = retrieval(z2020, z)
        results[name]["test_windows"] = len(z2020)
        results[name]["chance"] = 1 / len(z2020)
        log.info("%s: %s", name, results[name])
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
