"""How fast ``lcmap view`` serves a large map: start-up, and tile latency while panning.

Builds (or takes) a large scene with overviews and its kmeans map, starts the viewer's server in
this process, and times, over HTTP: the start (the :class:`Viewer` built and ``/info.json``
answered), then map and scene tiles at three zooms (the whole map in view, a middle zoom, the
map's own pixels) while the exact class count runs in the background, as it does when a user
starts panning. Baseline, in the same run: rio-tiler's ``Reader.tile`` on the same tiles without
the server (the library's own cost); the ratio says what the server adds.

Example:
    python benchmarks/view_tiles.py --size 16000 --json benchmarks/results/view_tiles.json
    python benchmarks/view_tiles.py --map big_map.tif --scene big_scene.tif
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

WORK = Path("/tmp/lcmap-bench")


def build(size: int) -> tuple[Path, Path]:
    """A mirrored NAIP scene of ``size`` px and its kmeans map (kept in /tmp/lcmap-bench)."""
    import rasterio
    from rasterio.enums import Resampling
    from segment_throughput import make_scene

    from lcmap import api

    WORK.mkdir(parents=True, exist_ok=True)
    scene, label_map = WORK / f"view_scene_{size}.tif", WORK / f"view_map_{size}.tif"
    if not scene.exists():
        make_scene(scene, size)
        with rasterio.open(scene, "r+") as dst:  # a scene as users keep them: with overviews
            dst.build_overviews([2, 4, 8, 16, 32, 64], Resampling.average)
    if not label_map.exists():
        api.segment(
            scene, label_map, method=api.MethodSpec("kmeans", classes=6), run=api.RunSpec(seed=0)
        )
    return label_map, scene


def tiles_at(bounds: tuple[float, ...], zoom: int, count: int) -> list[tuple[int, int, int]]:
    """Up to ``count`` tiles at ``zoom`` inside ``bounds``, spread along the diagonal."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    w, s, e, n = bounds
    picked = []
    for i in range(count):
        f = (i + 0.5) / count
        t = tms.tile(w + f * (e - w), n - f * (n - s), zoom)
        if (t.x, t.y, t.z) not in picked:
            picked.append((t.x, t.y, t.z))
    return picked


def timed_get(port: int, path: str) -> float:
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    reply = connection.getresponse()
    reply.read()
    connection.close()
    if reply.status not in (200, 204):
        raise RuntimeError(f"{path}: HTTP {reply.status}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=16000, help="side of the built scene, px")
    parser.add_argument("--map", type=Path, help="an existing map (instead of building one)")
    parser.add_argument("--scene", type=Path, help="its scene")
    parser.add_argument("--tiles", type=int, default=12, help="tiles timed per zoom and layer")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    label_map, scene = (args.map, args.scene) if args.map else build(args.size)

    from rio_tiler.io import Reader

    from lcmap.viewer.server import Viewer, ViewerServer

    start = time.perf_counter()
    viewer = Viewer(label_map, [scene] if scene else [])
    server = ViewerServer(viewer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    timed_get(port, "/info.json")
    startup = time.perf_counter() - start

    maxzoom, bounds = viewer.map.maxzoom, viewer.map.bounds
    zooms = sorted({max(0, maxzoom - 6), max(0, maxzoom - 3), maxzoom})
    rows: list[dict[str, Any]] = []
    for zoom in zooms:
        for layer, path in (("map", label_map), ("scene", scene)):
            if path is None:
                continue
            picked = tiles_at(bounds, zoom, args.tiles)
            served = [
                timed_get(port, f"/tiles/map/{z}/{x}/{y}.png?v=0")
                if layer == "map"
                else timed_get(port, f"/tiles/scene/0/{z}/{x}/{y}.png")
                for x, y, z in picked
            ]
            bare = []
            with Reader(str(path)) as reader:
                for x, y, z in picked:
                    t = time.perf_counter()
                    reader.tile(x, y, z, indexes=1 if layer == "map" else (1, 2, 3))
                    bare.append(time.perf_counter() - t)
            row = {
                "layer": layer,
                "zoom": zoom,
                "tiles": len(picked),
                "served_ms_median": round(1000 * statistics.median(served), 1),
                "served_ms_max": round(1000 * max(served), 1),
                "rio_tiler_ms_median": round(1000 * statistics.median(bare), 1),
                "ratio": round(statistics.median(bare) / statistics.median(served), 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "map": str(label_map),
        "map_px": None,
        "startup_s": round(startup, 2),
        "exact_counts_by_end": viewer.map.legend.exact,
        "rows": rows,
    }
    with Reader(str(label_map)) as reader:
        result["map_px"] = [reader.dataset.width, reader.dataset.height]
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
