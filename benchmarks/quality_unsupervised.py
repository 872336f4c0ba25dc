"""Unsupervised maps on dubai_dev: every lever fitted on tiles 1-4, scored on tiles 5-6 .

Each model is fitted once on the 36 scenes of tiles 1-4 (labels unused, :func:`lcmap.api.train`)
and applied to the 18 scenes of tiles 5-6; clusters are matched to the 5 classes per scene
(Hungarian) and the matched confusions pooled, as ``quality_stego.py`` does. In the same run:

- ``kmeans per scene``: today's baseline, each scene fitted and mapped on its own;
- ``kmeans``: pixel k-means fitted on tiles 1-4 like the deep models (the same protocol);
- ``dino_kmeans`` at its defaults (cosine k-means on ViT block-8 features), and with
  ``spectral_weight=1`` (the bands next to the features);
- ``primaps`` (PriMaPs-EM, ``dino_kmeans``' clusters refined on principal mask
  proposals), for each of ``--em-steps`` and ``--seeds``;
- ``stego`` block 8 (the trained head), for reference;
- ``simclr``: a resnet18-unet pre-trained on the fit tiles by
  SimCLR (``--simclr-steps``, 64-px windows, Adam 1e-3, batch 16), mapped by its cosine
  k-means probe.

Example:
    python benchmarks/quality_unsupervised.py --json quality_unsupervised.json
    python benchmarks/quality_unsupervised.py --runs primaps --em-steps 1000 3000 --seeds 0 1
    python benchmarks/quality_unsupervised.py --every 3 --runs primaps --flips
    python benchmarks/quality_unsupervised.py --runs simclr --simclr-steps 300 1000 \
        --fit-tiles 12 --test-tiles 34
"""

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_stego import DINOV2, INDEX, subset_index

RUNS = ("kmeans", "dino_kmeans", "stego", "simclr", "primaps")


def scores(name: str, result: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """Pooled accuracy, mIoU and mean F1 of an IndexResult, with seconds per megapixel."""
    m = result.metrics
    mpx = sum(s.result.confusion.sum() for s in result.scenes) / 1e6
    return {
        "run": name,
        "scenes": len(result.scenes),
        "accuracy": round(m.accuracy, 4),
        "miou": round(m.miou, 4),
        "mean_f1": round(m.mean_f1, 4),
        "map_s_per_mpx": round(result.seconds / mpx, 2),
        **extra,
    }


def main() -> int:
    from lcmap import api
    from lcmap.eval import read_index
    from lcmap.workflows.evaluate_index import evaluate_index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=INDEX)
    parser.add_argument("--every", type=int, default=1, help="take every N-th scene of each set")
    parser.add_argument("-k", "--classes", type=int, default=5)
    parser.add_argument("--weights", type=Path, default=DINOV2)
    parser.add_argument("--fit-tiles", default="1234", help="dubai_dev tiles to fit on")
    parser.add_argument("--test-tiles", default="56", help="dubai_dev tiles to score")
    parser.add_argument(
        "--flips",
        action="store_true",
        help="also map with flips=true (test-time augmentation, 4x the cost)",
    )
    parser.add_argument("--runs", nargs="+", default=list(RUNS[:3]), choices=RUNS)
    parser.add_argument("--simclr-steps", nargs="+", type=int, default=[1000])
    parser.add_argument("--simclr-encoder", default="resnet18-unet")
    parser.add_argument(
        "--em-steps",
        nargs="+",
        type=int,
        default=[None],
        help="primaps: EM steps (default: the method's)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="primaps: seeds")
    parser.add_argument(
        "--crops",
        nargs="+",
        type=int,
        default=[None],
        help="primaps: windows drawn for the fit (default: the method's)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory(prefix="lcmap-quality-") as tmp:
        work = Path(tmp)
        fit_index = subset_index(
            args.index, args.every, work / "fit.csv", set(args.fit_tiles.replace(",", ""))
        )
        test_index = subset_index(
            args.index, args.every, work / "test.csv", set(args.test_tiles.replace(",", ""))
        )
        fit_scenes = [e.scene for e in read_index(fit_index)]

        def fitted(
            method: str,
            name: str,
            options: dict[str, Any],
            seed: int = 0,
        ) -> tuple[Path, float]:
            model = work / f"{name}.lcmap"
            start = time.perf_counter()
            api.train(
                fit_scenes,
                model,
                method=api.MethodSpec(method, classes=args.classes, options=options),
                run=api.RunSpec(device=args.device, seed=seed),
            )
            return model, round(time.perf_counter() - start, 1)

        def apply(
            name: str,
            model: Path,
            fit_s: float,
            options: dict[str, Any] | None = None,
        ) -> None:
            result = evaluate_index(
                test_index,
                method=api.MethodSpec(options=options),
                model=model,
                run=api.RunSpec(device=args.device),
            )
            report(scores(name, result, {"fit_s": fit_s, "apply_options": options or {}}))

        vit = {"weights": str(args.weights)}
        if "kmeans" in args.runs:
            result = evaluate_index(test_index, method=api.MethodSpec("kmeans", args.classes))
            report(scores("kmeans per scene", result, {}))
            apply("kmeans", *fitted("kmeans", "kmeans", {}))
        if "dino_kmeans" in args.runs:
            model, fit_s = fitted("dino_kmeans", "dk0", vit)
            apply("dino_kmeans (defaults: block 8 features)", model, fit_s)
            if args.flips:
                apply("dino_kmeans + flips", model, fit_s, {"flips": True})
            bands = {**vit, "spectral_weight": 1.0}
            apply("dino_kmeans + bands (spectral_weight=1)", *fitted("dino_kmeans", "dk1", bands))
        if "primaps" in args.runs:
            for steps, crops, seed in itertools.product(args.em_steps, args.crops, args.seeds):
                options = {**vit, "em_steps": steps, "crops": crops, "seed": seed}
                name = (
                    f"primaps, {steps or 'default'} EM steps, {crops or 'default'} "
                    f"windows, seed {seed}"
                )
                # The seed draws the windows too (api.train's), not only the k-means
                # start and the EM's batch order.
                model, fit_s = fitted("primaps", f"pm{steps}_{crops}_{seed}", options, seed)
                apply(name, model, fit_s)
                if args.flips:
                    apply(f"{name}, flips", model, fit_s, {"flips": True})
        if "stego" in args.runs:
            apply(
                "stego block 8",
                *fitted(
                    "stego",
                    "stego",
                    {**vit, "backbone": "vit_small_patch14_dinov2", "feature_layer": 8},
                ),
            )
        if "simclr" in args.runs:
            for steps in args.simclr_steps:
                options = {
                    "encoder": args.simclr_encoder,
                    "crop_size": 64,
                    "steps": steps,
                    "windows": 1024,
                    "batch_size": 16,
                    "optimizer": "adam",
                }
                name = f"simclr {args.simclr_encoder}, {steps} steps"
                apply(name, *fitted("simclr", f"simclr{steps}", options))
    print("\n| run | accuracy | mIoU | mean F1 | fit s | map s/Mpx |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['run']} | {r['accuracy']} | {r['miou']} | {r['mean_f1']} | "
            f"{r.get('fit_s', '')} | {r['map_s_per_mpx']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
