"""Seconds per stage of ``lcmap segment -m kmeans -k 6`` on one scene, from cProfile (issue 17).

Stages are the cumulative times of lcmap's own functions on the main thread: scene statistics,
the k-means fit, window reads done on the main thread, scoring (local mean, distances, label),
the COG commit, and the whole mapping loop. Work on the reader and writer threads (most reads,
the row writes, the streamed overviews) is not in the stage rows, only in the total.

Example (the scene is one ``segment_throughput.py`` made):
    python benchmarks/segment_throughput.py --sizes 8000 --workdir /tmp/tp
    python benchmarks/segment_stages.py /tmp/tp/naip_8000.tif
    python benchmarks/segment_stages.py /tmp/tp/naip_8000.tif --lcmap /tmp/before  # a worktree
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

#: lcmap function -> stage row (``fit`` of kmeans.py, ``commit`` of writer.py).
STAGES = {
    "scene_statistics": "statistics",
    "fit": "fit (sampling + k-means)",
    "read_window": "reads on the main thread",
    "predict_labels": "score (local mean + distances + label)",
    "box_mean": "  of which the local mean",
    "commit": "COG commit",
    "map_scene": "mapping loop (read + score + stitch + write)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("--lcmap", type=Path, help="import lcmap from this checkout instead")
    args = parser.parse_args()
    if args.lcmap:
        sys.path.insert(0, str(args.lcmap.resolve()))
    import cProfile
    import pstats

    from lcmap import api

    print(f"lcmap from {Path(api.__file__).parents[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with cProfile.Profile() as prof:
            api.segment(
                args.scene, Path(tmp) / "map.tif", method=api.MethodSpec("kmeans", classes=6)
            )
        total = time.perf_counter() - start
    seconds: dict[str, float] = {}
    for (file, _, name), (_, _, _, cumulative, _) in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        if "/lcmap/" not in file or name not in STAGES:
            continue
        if (name == "fit" and "kmeans" not in file) or (name == "commit" and "writer" not in file):
            continue
        seconds[STAGES[name]] = cumulative
    print("| stage | s |\n|---|---|")
    for row in STAGES.values():
        print(f"| {row} | {seconds.get(row, float('nan')):.2f} |")
    print(f"| total | {total:.2f} |")


if __name__ == "__main__":
    main()
