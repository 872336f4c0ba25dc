"""Time and peak memory of ``lcmap vectorize`` against whole-raster polygonisation.

Each measurement runs in its own Python process, so ``ru_maxrss`` (peak resident memory) is
that run's alone. Both write the same GeoPackage, so the comparison is like for like:

- ``lcmap``: :func:`lcmap.io.vector.vectorize` (window by window, dissolve at window edges);
- ``whole``: read the whole band and its mask, :func:`rasterio.features.shapes` at once,
  shapely polygons, GeoDataFrame, GeoPackage.

"import MB" is the peak after importing the libraries, before any work; "extra MB" is what the
run adds on top. Usage::

    python benchmarks/vectorize_memory.py
    python benchmarks/vectorize_memory.py RASTER --window-size 1024 --min-area 50 --simplify 1
    python benchmarks/vectorize_memory.py --mosaic 2   # a 2 x 2 VRT mosaic: 20000 x 20000
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "chesapeake_labels"
    / "Baywide_13Class_20132014_E1300000_N1770000.tif"
)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _mosaic_vrt(raster: Path, n: int, folder: Path) -> Path:
    """A VRT that repeats ``raster`` n x n times side by side (a larger scene, same content)."""
    import rasterio

    with rasterio.open(raster) as src:
        width, height, t = src.width, src.height, src.transform
        crs = src.crs.to_wkt() if src.crs else ""
        dtype = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16"}[src.dtypes[0]]
        nodata = src.nodata
        block_x, block_y = src.block_shapes[0][1], src.block_shapes[0][0]
    sources = []
    for row in range(n):
        for col in range(n):
            sources.append(
                f"<ComplexSource><SourceFilename relativeToVRT='0'>{raster.resolve()}"
                "</SourceFilename><SourceBand>1</SourceBand>"
                f"<SourceProperties RasterXSize='{width}' RasterYSize='{height}' "
                f"DataType='{dtype}' BlockXSize='{block_x}' BlockYSize='{block_y}'/>"
                f"<SrcRect xOff='0' yOff='0' xSize='{width}' ySize='{height}'/>"
                f"<DstRect xOff='{col * width}' yOff='{row * height}' xSize='{width}' "
                f"ySize='{height}'/>"
                + (f"<NODATA>{nodata:g}</NODATA>" if nodata is not None else "")
                + "</ComplexSource>"
            )
    nodata_xml = f"<NoDataValue>{nodata:g}</NoDataValue>" if nodata is not None else ""
    xml = (
        f"<VRTDataset rasterXSize='{width * n}' rasterYSize='{height * n}'>"
        f"<SRS>{crs.replace('&', '&amp;').replace('<', '&lt;')}</SRS>"
        f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>"
        f"<VRTRasterBand dataType='{dtype}' band='1'>{nodata_xml}{''.join(sources)}"
        "</VRTRasterBand></VRTDataset>"
    )
    path = folder / f"mosaic{n}x{n}.vrt"
    path.write_text(xml)
    return path


def _worker(kind: str, raster: str, output: str, options: dict[str, float]) -> dict[str, object]:
    import geopandas as gpd
    import numpy as np
    import pyogrio  # noqa: F401  (imported by both paths; counted in the baseline)
    import rasterio
    from rasterio import features
    from shapely.geometry import shape

    from lcmap.io.vector import vectorize

    base = _peak_mb()
    start = time.perf_counter()
    if kind == "lcmap":
        result = vectorize(
            raster,
            output,
            overwrite=True,
            window_size=int(options["window_size"]),
            min_area=options["min_area"],
            simplify=options["simplify"],
        )
        polygons = result.polygons
    else:
        with rasterio.open(raster) as src:
            data = src.read(1)
            valid = src.read_masks(1) > 0
            transform, crs = src.transform, src.crs
        pairs = [
            (shape(g), int(v))
            for g, v in features.shapes(data, mask=valid, connectivity=4, transform=transform)
        ]
        frame = gpd.GeoDataFrame(
            {"class": np.array([v for _, v in pairs], np.int32)},
            geometry=[g for g, _ in pairs],
            crs=crs.to_wkt() if crs else None,
        )
        frame.to_file(output, driver="GPKG", engine="pyogrio")
        polygons = len(frame)
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    return {
        "kind": kind,
        "seconds": round(seconds, 2),
        "peak_mb": round(peak),
        "import_mb": round(base),
        "extra_mb": round(peak - base),
        "polygons": polygons,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raster", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--window-size", type=int, default=2048)
    parser.add_argument("--min-area", type=float, default=0.0)
    parser.add_argument("--simplify", type=float, default=0.0)
    parser.add_argument("--mosaic", type=int, default=1, help="repeat the raster N x N times")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is kept")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    options = {
        "window_size": float(args.window_size),
        "min_area": args.min_area,
        "simplify": args.simplify,
    }
    if args.worker:
        print(json.dumps(_worker(args.worker, str(args.raster), args.output, options)))
        return
    if not args.raster.is_file():
        sys.exit(f"{args.raster} not found; pass a label raster.")

    import rasterio

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.mosaic > 1:
            args.raster = _mosaic_vrt(args.raster, args.mosaic, Path(tmp))
        with rasterio.open(args.raster) as src:
            size = f"{src.width} x {src.height} {src.dtypes[0]}"
        print(f"raster: {args.raster.name} ({size}); options: {options}")
        for kind in ("lcmap", "whole"):
            runs = []
            for _ in range(args.repeat):
                command = [sys.executable, __file__, str(args.raster), "--worker", kind]
                command += ["--output", str(Path(tmp) / f"{kind}.gpkg")]
                command += ["--window-size", str(args.window_size)]
                command += ["--min-area", str(args.min_area), "--simplify", str(args.simplify)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            rows.append(min(runs, key=lambda r: r["seconds"]))
    print(f"{'kind':<6} {'seconds':>8} {'peak MB':>8} {'import MB':>10} {'extra MB':>9} polygons")
    for r in rows:
        print(
            f"{r['kind']:<6} {r['seconds']:>8} {r['peak_mb']:>8} {r['import_mb']:>10} "
            f"{r['extra_mb']:>9} {r['polygons']}"
        )
    if args.json:
        args.json.write_text(json.dumps({"raster": str(args.raster), **options, "runs": rows}))


if __name__ == "__main__":
    main()
