"""The lever sweeps behind dino_kmeans' defaults, on dubai_dev tiles 1-4 only (issue 15).

A feature-cache harness, so that one backbone pass serves every sweep: ``cache`` runs the
DINOv2-S/14 of ``../shared/weights`` once per scene (224 px windows every 112 px, patch
features of blocks 4, 6, 8, 10, 12 averaged where windows overlap, bands stretched to their
2-98% percentiles per scene) into ``--cache``; ``sweep`` fits k-means (K = 5) on pixels of one
half of the scenes (5000 a scene; unit features bilinearly sampled at the pixel, optionally
next to ``beta`` x the bands) and scores the other half (per-scene Hungarian, pooled), both
ways (``A->B`` and ``B->A``: the 36 scenes of tiles 1-4 split by alternate index rows), and
``--loto`` leaving one tile out. It approximates lcmap's mapping (features averaged rather than
Hann-blended scores; per-scene stretch rather than the model's), so the product's figures
come from ``quality_unsupervised.py``; this one only ranks the levers.

Example:
    python benchmarks/dino_kmeans_levers.py cache --cache /tmp/dk_cache
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --blocks 4 6 8 10 12
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --betas 0 0.5 1 2
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --betas 0 0.5 1 --loto
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --guided 8
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --blocks 8 --center
    python benchmarks/dino_kmeans_levers.py sweep --cache /tmp/dk_cache --blocks 8 \
        --em-steps 7000 --windows 512 --seed 1
"""

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "dubai_dev"
DINOV2 = ROOT / ".." / "shared" / "weights" / "dinov2_vits14_imgfocus.safetensors"
BLOCKS = [4, 6, 8, 10, 12]
WINDOW, STRIDE, PATCH, K = 224, 112, 14, 5


def tile_of(name: str) -> str:
    return name.split("_")[1].lstrip("t")


def scenes() -> list[dict[str, str]]:
    with (DATA / "index.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if tile_of(r["name"]) in "1234"]


def cache(out: Path, shift: int = 0) -> None:
    """One backbone pass per scene; with ``shift``, of the scene less its first ``shift`` rows
    and columns (a patch grid ``shift`` px off the first: ``sweep --shifts``)."""
    import rasterio
    import torch
    import torch.nn.functional as F

    from lcmap.nets import build_net
    from lcmap.nets import vit as _vit

    out.mkdir(parents=True, exist_ok=True)
    net = build_net("vit", backbone="vit_small_patch14_dinov2", backbone_args={})
    _vit.load_backbone_weights(net, DINOV2, "vit_small_patch14_dinov2.lvd142m")
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for row in scenes():
        target = out / f"{row['name']}{f'_s{shift}' if shift else ''}.npz"
        if target.exists():
            continue
        with rasterio.open(DATA / row["scene"]) as src:
            img = src.read().astype(np.float32)
        lo, hi = (v.astype(np.float32) for v in np.percentile(img.reshape(3, -1), (2, 98), 1))
        x = np.clip((img - lo[:, None, None]) / np.maximum(hi - lo, 1e-6)[:, None, None], 0, 1)
        x = x[:, shift:, shift:]
        _, h, w = x.shape
        big_h = max(WINDOW, -(-(h - WINDOW) // STRIDE) * STRIDE + WINDOW)
        big_w = max(WINDOW, -(-(w - WINDOW) // STRIDE) * STRIDE + WINDOW)
        xt = F.pad(torch.from_numpy(x)[None], (0, big_w - w, 0, big_h - h), mode="reflect")
        xt = (xt - mean) / std
        n = WINDOW // PATCH
        acc = torch.zeros(len(BLOCKS), net.num_features, big_h // PATCH, big_w // PATCH)
        count = torch.zeros(1, 1, big_h // PATCH, big_w // PATCH)
        offsets = [(i, j) for i in range(0, big_h - WINDOW + 1, STRIDE)
                   for j in range(0, big_w - WINDOW + 1, STRIDE)]  # fmt: skip
        with torch.no_grad():
            for b in range(0, len(offsets), 16):
                chunk = offsets[b : b + 16]
                batch = torch.cat([xt[:, :, i : i + WINDOW, j : j + WINDOW] for i, j in chunk])
                feats = net.forward_intermediates(batch, indices=[k - 1 for k in BLOCKS],
                                                  norm=True, intermediates_only=True,
                                                  output_fmt="NCHW")  # fmt: skip
                for m, (i, j) in enumerate(chunk):
                    r, c = i // PATCH, j // PATCH
                    for bi in range(len(BLOCKS)):
                        acc[bi, :, r : r + n, c : c + n] += feats[bi][m]
                    count[..., r : r + n, c : c + n] += 1
        np.savez(target, feats=(acc / count).half().numpy(), img=(x * 255).astype(np.uint8))
        print(row["name"], flush=True)


class Scene:
    def __init__(self, folder: Path, name: str) -> None:
        import rasterio
        import torch

        z = np.load(folder / f"{name}.npz")
        self.feats = torch.from_numpy(z["feats"].astype(np.float32))
        self.folder, self.name = folder, name
        self.img = torch.from_numpy(z["img"].astype(np.float32) / 255)
        with rasterio.open(DATA / "truth" / f"{name}.tif") as src:
            self.truth = src.read(1)
        self.h, self.w = self.truth.shape

    def features(self, blocks: tuple[int, ...], mean: Any = None) -> Any:
        """Unit features of ``blocks``; with ``mean`` (the fit's mean unit feature), centred
        on it first and made unit again (``--center``)."""
        import torch
        import torch.nn.functional as F

        f = torch.cat([F.normalize(self.feats[BLOCKS.index(b)], dim=0) for b in blocks])
        f = F.normalize(f, dim=0)
        if mean is not None:
            f = F.normalize(f - mean[:, None, None], dim=0)
        return f[None]


def mean_feature(scenes_: list[Scene], blocks: tuple[int, ...]) -> Any:
    """The mean unit feature over the fit scenes' patches (``--center``)."""
    import torch

    sums = [s.features(blocks)[0].flatten(1) for s in scenes_]
    return torch.cat(sums, 1).mean(1)


def fit(
    scenes_: list[Scene], blocks: tuple[int, ...], beta: float, seed: int, mean: Any = None
) -> Any:
    import torch
    import torch.nn.functional as F
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    rows = []
    for s in scenes_:
        f = s.features(blocks, mean)
        gh, gw = f.shape[-2:]
        ys, xs = rng.integers(0, s.h, 5000), rng.integers(0, s.w, 5000)
        grid = torch.tensor(np.stack([(xs + 0.5) / (gw * PATCH) * 2 - 1,
                                      (ys + 0.5) / (gh * PATCH) * 2 - 1], -1),
                            dtype=torch.float32)[None, None]  # fmt: skip
        v = F.normalize(F.grid_sample(f, grid, align_corners=False)[0, :, 0].T, dim=1)
        rows.append(torch.cat([v, beta * s.img[:, ys, xs].T], 1) if beta else v)
    data = torch.cat(rows).numpy()
    return torch.from_numpy(KMeans(K, n_init=3, random_state=seed).fit(data).cluster_centers_)


def crops(scenes_: list[Scene], blocks: tuple[int, ...], args: argparse.Namespace, gen: Any) -> Any:
    """(N, D, 16, 16) windows of patch features cut from the cached grids: ``--primaps-crops``
    a scene, or with ``--windows N`` N windows drawn as the product draws them (a scene picked
    with probability proportional to its area, ``--stratified``: the same number a scene).
    ``gen`` (a torch generator) places them; without ``--windows`` it goes on to the EM, as
    when the earlier sweep rows were measured, so they reproduce."""
    import torch

    n = WINDOW // PATCH
    if args.windows:
        rng = np.random.default_rng(args.seed)
        if args.stratified:
            picks = np.resize(rng.permutation(len(scenes_)), args.windows)
        else:
            area = np.array([s.h * s.w for s in scenes_], np.float64)
            picks = rng.choice(len(scenes_), args.windows, p=area / area.sum())
    else:
        picks = np.repeat(np.arange(len(scenes_)), args.primaps_crops)
    out = []
    for i in picks:
        f = scenes_[int(i)].features(blocks)[0]
        gh, gw = f.shape[-2:]
        r = int(torch.randint(max(gh - n, 0) + 1, (1,), generator=gen))
        c = int(torch.randint(max(gw - n, 0) + 1, (1,), generator=gen))
        out.append(f[:, r : r + n, c : c + n])
    return torch.stack(out)


def fit_windows(feats: Any, seed: int, n_init: int) -> Any:
    """k-means on 500 pixels a window drawn with the Hann weight (the product's draw)."""
    import torch
    import torch.nn.functional as F
    from sklearn.cluster import KMeans

    from lcmap.methods._sliding import hann_pixels

    gen = torch.Generator().manual_seed(seed)
    valid = torch.ones(WINDOW, WINDOW, dtype=torch.bool)
    rows = []
    for f in feats:
        drawn = hann_pixels(valid, 500, gen)
        assert drawn is not None
        v = F.grid_sample(f[None], drawn[1][None, None], mode="bilinear",
                          padding_mode="border", align_corners=False)  # fmt: skip
        rows.append(F.normalize(v[0, :, 0].T, dim=1))
    data = torch.cat(rows).numpy()
    return torch.from_numpy(KMeans(K, n_init=n_init, random_state=seed).fit(data).cluster_centers_)


def primaps(feats: Any, init: Any, args: argparse.Namespace, gen: Any) -> Any:
    """PriMaPs-EM (lcmap.methods._primaps) from the k-means ``init`` on the windows ``feats``."""
    import torch

    from lcmap.methods._primaps import fit_prototypes, principal_masks
    from lcmap.tiling import window_weights

    n = feats.shape[-1]
    masks = [principal_masks(f, threshold=args.threshold) for f in feats]
    return fit_prototypes(feats, torch.stack(masks), init.float(),
                          weight=torch.from_numpy(window_weights(n)), steps=args.em_steps,
                          generator=gen)  # fmt: skip


def labels(
    s: Scene,
    c: Any,
    blocks: tuple[int, ...],
    beta: float,
    guided: int,
    mean: Any = None,
    shifts: tuple[int, ...] = (),
) -> Any:
    import torch
    import torch.nn.functional as F

    from lcmap.methods._guided import guided_filter

    f = s.features(blocks, mean)
    c = c.float()
    d = f.shape[1]
    cf, cs = c[:, :d], c[:, d:]
    g = torch.einsum("bchw,kc->bkhw", f, cf)
    g = F.interpolate(g, size=(f.shape[2] * PATCH, f.shape[3] * PATCH), mode="bilinear",
                      align_corners=False)[..., : s.h, : s.w]  # fmt: skip
    if shifts:  # the same scores from patch grids shifted by each shift, averaged
        total, weight = g.clone(), torch.ones(1, 1, s.h, s.w)
        for shift in shifts:
            z = np.load(s.folder / f"{s.name}_s{shift}.npz")
            other = Scene.__new__(Scene)
            other.feats = torch.from_numpy(z["feats"].astype(np.float32))
            fs = other.features(blocks, mean)
            gs = torch.einsum("bchw,kc->bkhw", fs, cf)
            gs = F.interpolate(gs, size=(fs.shape[2] * PATCH, fs.shape[3] * PATCH),
                               mode="bilinear", align_corners=False)  # fmt: skip
            gs = gs[..., : s.h - shift, : s.w - shift]
            total[..., shift:, shift:] += gs
            weight[..., shift:, shift:] += 1
        g = total / weight
    score = 2 * g - (cf**2).sum(1)[None, :, None, None]
    if beta:
        score = score - ((beta * s.img[None, :, None] - cs.T[None, :, :, None, None]) ** 2).sum(1)
    if guided:
        score = guided_filter(s.img[None], score, guided, 1e-2)
    return score.argmax(1)[0].numpy()


def pooled(pairs: list[tuple[Any, Any]]) -> dict[str, float]:
    from scipy.optimize import linear_sum_assignment

    conf = np.zeros((K, K), np.int64)
    for lab, truth in pairs:
        m = truth != 255
        cm = np.zeros((K, K), np.int64)
        np.add.at(cm, (lab[m], truth[m]), 1)
        rows, cols = linear_sum_assignment(-cm)
        conf += cm[rows][np.argsort(cols)]
    tp = np.diag(conf)
    iou = tp / (conf.sum(0) + conf.sum(1) - tp)
    return {"accuracy": round(float(tp.sum() / conf.sum()), 4), "miou": round(float(iou.mean()), 4)}


def sweep(args: argparse.Namespace) -> None:
    import torch

    names = sorted(r["name"] for r in scenes())
    loaded = {n: Scene(args.cache, n) for n in names}
    if args.loto:
        folds = [([n for n in names if tile_of(n) != t], [n for n in names if tile_of(n) == t])
                 for t in "1234"]  # fmt: skip
    else:
        a, b = names[0::2], names[1::2]
        folds = [(a, b), (b, a)]
    for blocks in [tuple(args.blocks)] if args.together else [(b,) for b in args.blocks]:
        for beta in args.betas:
            res = []
            for fit_names, test_names in folds:
                fitted = [loaded[n] for n in fit_names]
                mean = mean_feature(fitted, blocks) if args.center else None
                gen = torch.Generator().manual_seed(args.seed)
                if args.windows:  # the product's draw: k-means and EM on the same windows
                    feats = crops(fitted, blocks, args, gen)
                    c = fit_windows(feats, args.seed, args.n_init)
                    gen = torch.Generator().manual_seed(args.seed)  # the EM's own, as run
                else:
                    c = fit(fitted, blocks, beta, args.seed, mean)
                    feats = crops(fitted, blocks, args, gen) if args.em_steps else None
                if args.em_steps:
                    c = primaps(feats, c, args, gen)
                res.append(pooled([(labels(loaded[n], c, blocks, beta, args.guided, mean,
                                           tuple(args.shifts)),
                                    loaded[n].truth) for n in test_names]))  # fmt: skip
            mious = [r["miou"] for r in res]
            print(f"blocks {blocks} beta {beta} guided {args.guided} center {args.center} "
                  f"shifts {args.shifts} em {args.em_steps} threshold {args.threshold} "
                  f"windows {args.windows} stratified {args.stratified} n_init {args.n_init} "
                  f"seed {args.seed}: "
                  f"mIoU per fold {mious}, mean {np.mean(mious):.4f}", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("cache", "sweep"))
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--blocks", type=int, nargs="+", default=[8])
    parser.add_argument("--together", action="store_true", help="concatenate the blocks")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0])
    parser.add_argument("--guided", type=int, default=0, help="guided-filter radius (0 = off)")
    parser.add_argument("--loto", action="store_true", help="leave one tile out (4 folds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shifts",
        type=int,
        nargs="*",
        default=[],
        help="average scores from these shifted patch grids (cache --shift)",
    )
    parser.add_argument("--shift", type=int, default=0, help="cache: shift the patch grid")
    parser.add_argument(
        "--em-steps",
        type=int,
        default=0,
        help="refine the k-means by PriMaPs-EM for this many steps (0 = off)",
    )
    parser.add_argument("--threshold", type=float, default=0.4, help="PriMaPs mask threshold")
    parser.add_argument(
        "--primaps-crops",
        type=int,
        default=8,
        help="PriMaPs windows (16 x 16 patches) cut from each fit scene",
    )
    parser.add_argument("--windows", type=int, default=0,
                        help="draw this many windows across the fit scenes, as the product "
                        "does, for both the k-means and the EM (0 = the fixed draws)")  # fmt: skip
    parser.add_argument(
        "--stratified",
        action="store_true",
        help="--windows: the same number of windows from every scene",
    )
    parser.add_argument("--n-init", type=int, default=3, help="--windows: k-means restarts")
    parser.add_argument("--center", action="store_true",
                        help="centre the unit features on the fit's mean feature")  # fmt: skip
    args = parser.parse_args()
    if args.step == "cache":
        cache(args.cache, args.shift)
    else:
        sweep(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
