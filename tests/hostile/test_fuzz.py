"""Fuzzing: byte flips and truncations of a real GeoTIFF and of a model file (issue 12).

Every case ends with exit 0 or 1, never a traceback or a partial file; when it ends 0 the map
is a valid raster on the (mutated) scene's grid. A fixed seed keeps CI deterministic.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from typer.testing import CliRunner

from lcmap.cli import app

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "naip_2020_rgbn.tif"
CASES = 400


def test_mutated_scenes_and_models_fail_cleanly(tmp_path: Path) -> None:
    scene = tmp_path / "scene.tif"
    with rasterio.open(SAMPLE) as src:
        window = Window(200, 200, 64, 64)
        profile = {
            "driver": "GTiff",
            "width": 64,
            "height": 64,
            "count": 4,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": src.window_transform(window),
            "tiled": True,
            "blockxsize": 32,
            "blockysize": 32,
            "compress": "deflate",
            "nodata": 0,
            "photometric": "MINISBLACK",
        }
        data = src.read(window=window)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.maximum(data, 1))
    model = tmp_path / "k.lcmap"
    r = CliRunner().invoke(app, ["train", str(scene), "-m", "kmeans", "-k", "3", "-o", str(model)])
    assert r.exit_code == 0, r.output
    work = tmp_path / "cases"
    work.mkdir()
    worker = Path(__file__).with_name("cases.py")
    done = subprocess.run(
        [sys.executable, str(worker), str(work), str(scene), str(model), str(CASES), "12"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) == CASES
    assert "Exception ignored" not in done.stderr, done.stderr[-2000:]
    for res in results:
        where = f"case {res['case']} ({res['target']}, {res['kind']}): {res['output'][-400:]}"
        assert res["exit"] in (0, 1) and res["exception"] is None, where
        assert "Traceback" not in res["output"] and "Exception ignored" not in res["output"], where
        produced = [f for f in res["files"] if f not in ("scene.tif", "model.lcmap")]
        if res["exit"] == 1:
            assert produced == [], where
            continue
        assert produced == ["m.lcmap.json", "m.qml", "m.tif", "m.tif.aux.xml"], where
        source = work / f"case{res['case']}" / "scene.tif"
        with (
            rasterio.open(work / f"case{res['case']}" / "m.tif") as out,
            rasterio.open(source if res["target"] == "scene" else scene) as ref,
        ):
            assert (out.width, out.height, out.crs) == (ref.width, ref.height, ref.crs), where
            out.read(1)
    # Both kinds of outcome occur: the harness is not vacuous.
    assert {r["exit"] for r in results} == {0, 1}
