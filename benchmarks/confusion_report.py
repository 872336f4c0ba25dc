"""Where does a row of ``quality_encoders.py`` lose? Its confusions, pooled, and the worst crops.

``quality_encoders.py`` keeps each scored crop's confusion matrix (truth x predicted class) in
``results.json``. This prints, for one row, the matrix pooled over every run of the given files
(each truth class's share predicted as each class), then the crops that hold the most pixels of
truth class ``--truth`` predicted as ``--as`` (summed over runs; of how many pixels of that class,
and their share of that error).

Usage:
    python benchmarks/confusion_report.py /tmp/s24/o56_0/results.json \\
        --row "simclr linear-texture, suggested" --truth vegetation --as water

(``benchmarks/README.md``'s section "Test-time augmentation, modality dropout of the head,
self-training": 54% of tiles 5-6's vegetation mapped as water under DINOv2's head, 19% under the
random ViT's, 69% of it in three scenes with ``--seeds 0``.)
"""

import argparse
import json
from pathlib import Path

import numpy as np
from quality_cas import CLASSES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="quality_encoders.py results.json files")
    p.add_argument("--row", required=True, help="the row's name, as in its table")
    p.add_argument("--truth", default=CLASSES[0], choices=CLASSES, help="the true class")
    p.add_argument("--as", dest="predicted", default=CLASSES[1], choices=CLASSES,
                   help="the class it is mistaken for")  # fmt: skip
    p.add_argument("--seeds", help="fine-tuning seeds to keep, e.g. 0 (default: all)")
    p.add_argument("--top", type=int, default=5, help="crops to list")
    args = p.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    truth, predicted = CLASSES.index(args.truth), CLASSES.index(args.predicted)
    pooled = np.zeros((len(CLASSES), len(CLASSES) + 1), dtype=np.int64)  # + unassigned
    per_crop: dict[str, int] = {}
    truth_px: dict[str, int] = {}
    for path in args.results:
        results = json.loads(path.read_text())
        runs = [r for r in results["runs"] if r["row"] == args.row]
        runs = [r for r in runs if seeds is None or r["seed"] in seeds]
        if not runs:
            raise SystemExit(f"{path}: no run of row '{args.row}' (seeds {args.seeds or 'all'})")
        for run in runs:
            for crop, matrix in zip(results["crops"], run["confusions"], strict=True):
                m = np.asarray(matrix, dtype=np.int64)
                pooled[:, : m.shape[1]] += m
                per_crop[crop] = per_crop.get(crop, 0) + int(m[truth, predicted])
                truth_px[crop] = truth_px.get(crop, 0) + int(m[truth].sum())
    shares = pooled / np.maximum(pooled.sum(1, keepdims=True), 1)
    print("truth \\ predicted: " + " / ".join(CLASSES))
    for name, row in zip(CLASSES, shares, strict=True):
        print(f"{name}: " + " / ".join(f"{v:.2f}" for v in row[: len(CLASSES)]))
    total = sum(per_crop.values())
    print(f"\n{args.truth} predicted as {args.predicted}: {shares[truth, predicted]:.0%} of its "
          f"pixels; the crops holding most of it:")  # fmt: skip
    for crop, count in sorted(per_crop.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {crop}: {count} of its {truth_px[crop]} {args.truth} px "
              f"({count / max(total, 1):.0%} of the error)")  # fmt: skip


if __name__ == "__main__":
    main()
