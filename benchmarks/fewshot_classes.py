"""Which classes the few-shot patches of dubai_dev hold, against the held-out tiles (issue 14).

Prints the share of each truth class in tiles 1-4 (where patches come from) and in tiles 5-6
(where runs are scored); the labelled pixels per class in the N random patches ``lcmap
finetune --patches N`` trains on, per seed (``--patch-file``: in a ``suggest-labels`` file's
first N instead); and, with ``--model``, where a tuned model sends each class of tiles 5-6
(rows: truth, % of the row; the central crops ``quality_encoders.py`` scores).

Example:
    python benchmarks/fewshot_classes.py --header /tmp/fs/sugg0/resnet18-unet-simclr.lcmap
    python benchmarks/fewshot_classes.py --header MODEL --patch-file MODEL-suggested20.gpkg
    python benchmarks/fewshot_classes.py --header MODEL --model /tmp/fs/sugg0/tuned.lcmap
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
import rasterio
from quality_cas import CLASSES, DATA, eval_crops, predict_labels, read_index

from lcmap.errors import NoNodataWarning
from lcmap.fewshot.finetune import _training_patches
from lcmap.models import read_header


def shares(paths: list[Path]) -> np.ndarray:
    counts = np.zeros(256, np.int64)
    for path in paths:
        with rasterio.open(path) as src:
            counts += np.bincount(src.read(1).ravel(), minlength=256)
    return counts[: len(CLASSES)] / counts[: len(CLASSES)].sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--header", type=Path, required=True,
                   help="Model whose bands and normalisation the patches use.")  # fmt: skip
    p.add_argument("--patches", type=int, default=20)
    p.add_argument("--patch-file", type=Path)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--model", type=Path, help="A tuned model: its confusion on tiles 5-6.")
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=NoNodataWarning)
    train, held = read_index(DATA)
    print("| class | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES))
    for name, rows in (("tiles 1-4", train), ("tiles 5-6", held)):
        print(f"| {name} | " + " | ".join(f"{v:.1%}" for v in shares(
            [DATA / r["truth"] for r in rows])) + " |")  # fmt: skip
    scenes, truths = [DATA / r["scene"] for r in train], [DATA / r["truth"] for r in train]
    header = read_header(args.header)
    for seed in (int(s) for s in args.seeds.split(",")):
        _, targets, _ = _training_patches(scenes, scenes, truths, header, None, None,
                                          args.patch_file, 128, args.patches, seed)  # fmt: skip
        t = np.stack(targets)
        counts = np.bincount(t[t != 255].ravel(), minlength=len(CLASSES))
        print(f"| {args.patches} patches, seed {seed} (pixels) | "
              + " | ".join(str(c) for c in counts) + " |")  # fmt: skip
    if args.model:
        crops = eval_crops(DATA, held, 512)
        conf = np.zeros((len(CLASSES),) * 2, np.int64)
        for pred, c in zip(predict_labels(args.model, crops), crops, strict=True):
            keep = (c["truth"] != 255) & c["valid"]
            conf += np.bincount(c["truth"][keep].astype(np.int64) * len(CLASSES) + pred[keep],
                                minlength=len(CLASSES) ** 2).reshape(conf.shape)  # fmt: skip
        print(f"\n{args.model.name} on tiles 5-6, % of each truth row\n| truth \\ predicted | "
              + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES))  # fmt: skip
        for name, row in zip(CLASSES, conf, strict=True):
            print(f"| {name} | " + " | ".join(f"{v:.0%}" for v in row / max(1, row.sum())) + " |")


if __name__ == "__main__":
    main()
