"""``lcmap.viewer.server``: the endpoints (legend areas, tiles, point values, naming, refusals)
and the page in a real headless browser (tiles drawn, the legend, a click that reports the
right class, naming in the page)."""

import http.client
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio

from lcmap.viewer.server import Viewer, ViewerServer, free_name
from lcmap.workflows.classes import name_classes
from lcmap.workflows.specs import MethodSpec, RunSpec

from ._browser import CHROMIUM, Browser

ROOT = Path(__file__).resolve().parents[2]


def _request(
    server: ViewerServer, path: str, method: str = "GET", body: bytes | None = None, **headers: str
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    connection.request(method, path, body=body, headers=headers)
    reply = connection.getresponse()
    data = reply.read()
    connection.close()
    return reply.status, data


def _lonlat(server: ViewerServer, fx: float, fy: float) -> tuple[float, float]:
    w, s, e, n = server.viewer.map.bounds
    return w + fx * (e - w), n - fy * (n - s)


def test_legend_gives_names_colours_and_areas(server: ViewerServer) -> None:
    status, body = _request(server, "/info.json")
    assert status == 200
    info = json.loads(body)
    assert [c["name"] for c in info["classes"]] == ["water", "trees"]
    server.viewer.map.count_exactly().join(30)
    info = json.loads(_request(server, "/info.json")[1])
    assert info["exact"]
    assert [c["hectares"] for c in info["classes"]] == [200.0, 200.0]
    assert [c["share"] for c in info["classes"]] == [50.0, 50.0]
    assert info["classes"][0]["colour"].startswith("#")


def test_tiles_are_pngs_in_the_map_colours(server: ViewerServer) -> None:
    from PIL import Image  # matplotlib's dependency

    lon, lat = _lonlat(server, 0.5, 0.5)
    import morecantile

    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 13)
    status, body = _request(server, f"/tiles/map/13/{tile.x}/{tile.y}.png")
    assert status == 200
    picture = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
    opaque = picture[picture[..., 3] == 255][:, :3]
    colours = {tuple(c) for c in opaque}
    assert len(colours) == 2  # water and trees, nothing blended between them
    status, body = _request(server, f"/tiles/map/13/{tile.x}/{tile.y}.png?highlight=0")
    dimmed = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
    assert (dimmed[..., 3] == 255).sum() < (picture[..., 3] == 255).sum()
    status, body = _request(server, f"/tiles/scene/0/13/{tile.x}/{tile.y}.png")
    assert status == 200 and body.startswith(b"\x89PNG")
    assert _request(server, "/tiles/map/13/0/0.png")[0] == 204  # far away: nothing there


def test_a_point_gives_the_class_and_the_band_values(
    server: ViewerServer, files: dict[str, Path]
) -> None:
    lon, lat = _lonlat(server, 0.01, 0.01)  # the scene's corner holds 7 in every band
    answer = json.loads(_request(server, f"/point?lon={lon}&lat={lat}")[1])
    assert (answer["class"], answer["name"]) == (0, "water")
    assert answer["scenes"][0]["values"] == [7, 7, 7]
    lon, lat = _lonlat(server, 0.9, 0.5)
    assert json.loads(_request(server, f"/point?lon={lon}&lat={lat}")[1])["name"] == "trees"
    outside = json.loads(_request(server, "/point?lon=0&lat=0")[1])
    assert outside["class"] is None and outside["scenes"][0]["values"] == [None] * 3


def test_requests_never_reach_other_files(server: ViewerServer) -> None:
    for path in ["/../../etc/passwd", "/static/../server.py", "/tiles/map/1/2/x.png", "/%2e%2e/"]:
        assert _request(server, path)[0] == 404, path
    assert _request(server, "/point?lon=x&lat=1")[0] == 400
    assert _request(server, "/tiles/scene/9/1/1/1.png")[0] == 404
    # A name pointed at 127.0.0.1 by another site (DNS rebinding) is refused.
    assert _request(server, "/info.json", Host="evil.example:80")[0] == 403


def test_naming_in_the_page_writes_a_new_map_and_never_replaces_one(
    files: dict[str, Path], tmp_path: Path
) -> None:
    original = tmp_path / "m.tif"
    name_classes([files["map"]], original, {0: "water", 1: "trees"})
    before = original.read_bytes()
    served = ViewerServer(Viewer(original))
    threading.Thread(target=served.serve_forever, daemon=True).start()
    try:
        body = json.dumps({"names": {"0": "water", "1": "water"}}).encode()
        # Not JSON (a form from another site): refused before anything is written.
        plain = {"Content-Type": "text/plain"}
        assert _request(served, "/classes", "POST", body, **plain)[0] == 415
        status, reply = _request(
            served, "/classes", "POST", body, **{"Content-Type": "application/json"}
        )
        assert status == 200, reply
        written = Path(json.loads(reply)["map"])
        assert written == tmp_path / "m.named.tif"
        assert original.read_bytes() == before
        info = json.loads(_request(served, "/info.json")[1])
        assert [c["name"] for c in info["classes"]] == ["water"] and info["version"] == 1
        # The page now shows the new map: a class it does not have is one clear line.
        wrong = json.dumps({"names": {"1": "lake"}}).encode()
        status, reply = _request(
            served, "/classes", "POST", wrong, **{"Content-Type": "application/json"}
        )
        assert status == 422 and "1" in json.loads(reply)["error"]
        again = json.dumps({"names": {"0": "lake"}}).encode()
        status, reply = _request(
            served, "/classes", "POST", again, **{"Content-Type": "application/json"}
        )
        assert Path(json.loads(reply)["map"]) == tmp_path / "m.named.named.tif"
        assert free_name(original, "named") == tmp_path / "m.named-2.tif"
    finally:
        served.shutdown()
        served.server_close()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (.ci/run installs it)")
def test_the_page_in_a_real_browser(server: ViewerServer) -> None:
    with Browser(server.url) as browser:
        browser.wait_for("document.body.dataset.state === 'ready'")
        names = browser.js("[...document.querySelectorAll('#legend input')].map(i => i.value)")
        assert names == ["water", "trees"]
        # The canvas is painted: most of it holds the map (it is fitted to the view).
        painted = browser.js(
            """(() => { const c = document.getElementById('map');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                 return n / (c.width * c.height); })()"""
        )
        assert painted > 0.4
        rect = browser.js(
            "(() => { const r = document.getElementById('map').getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })()"
        )
        left, top, width, height = rect
        browser.click(left + width * 0.35, top + height / 2)
        browser.wait_for("document.body.dataset.queried === '0'")
        assert "water" in browser.js("document.getElementById('query').textContent")
        browser.click(left + width * 0.65, top + height / 2)
        browser.wait_for("document.body.dataset.queried === '1'")
        assert "trees" in browser.js("document.getElementById('query').textContent")
        browser.screenshot(ROOT / "test-artefacts" / "view.png")
        # Naming in the page: trees renamed water merges the two; a new map is written.
        browser.js(
            "(() => { const i = document.querySelectorAll('#legend input')[1];"
            " i.value = 'water'; })()"
        )
        x, y = browser.js(
            "(() => { const r = document.getElementById('save').getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        browser.click(x, y)
        browser.wait_for("document.querySelectorAll('#legend input').length === 1")
        assert "Wrote" in browser.js("document.getElementById('message').textContent")
    written = server.viewer.map.path
    assert written.name.startswith("map.named") and written.exists()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (.ci/run installs it)")
def test_a_real_scene_and_its_map_in_a_real_browser(tmp_path: Path) -> None:
    """The NAIP sample and its kmeans map: tiles drawn, the legend, and a click that reports
    the class the map holds at the clicked place."""
    from rasterio.warp import transform as reproject_points

    from lcmap import api

    scene = ROOT / "sample_data" / "naip_2020_rgbn.tif"
    label_map = tmp_path / "naip_map.tif"
    api.segment(scene, label_map, method=MethodSpec("kmeans", classes=4), run=RunSpec(seed=0))
    served = ViewerServer(Viewer(label_map, [scene]))
    threading.Thread(target=served.serve_forever, daemon=True).start()
    try:
        with Browser(served.url) as browser:
            browser.wait_for("document.body.dataset.state === 'ready'")
            names = browser.js("[...document.querySelectorAll('#legend input')].map(i => i.value)")
            assert names == [f"class {i}" for i in range(4)]
            left, top, width, height = browser.js(
                "(() => { const r = document.getElementById('map').getBoundingClientRect();"
                " return [r.left, r.top, r.width, r.height]; })()"
            )
            browser.click(left + width * 0.45, top + height * 0.55)
            queried = browser.wait_for("document.body.dataset.queried")
            lines = browser.js(
                "[...document.querySelectorAll('#query div')].map(d => d.textContent)"
            )
            browser.screenshot(ROOT / "test-artefacts" / "view_naip.png")
    finally:
        served.shutdown()
        served.server_close()
    lat, lon = (float(v) for v in lines[0].split(","))
    assert lines[1] == f"class {queried}: class {queried}"
    with rasterio.open(label_map) as src:
        xs, ys = reproject_points("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        # The page rounds the place to 6 decimals (about 0.1 m): the class there, or next to it.
        around = src.read(1)[row - 1 : row + 2, col - 1 : col + 2]
    assert int(queried) in around


def test_a_stop_waits_for_a_map_being_written(files: dict[str, Path], tmp_path: Path) -> None:
    """`lcmap view` calls wait_idle when it stops: it returns only once a rename is done."""
    import time

    original = tmp_path / "m.tif"
    name_classes([files["map"]], original, {0: "water", 1: "trees"})
    viewer = Viewer(original)
    done: list[float] = []
    with viewer._lock:  # a rename in progress holds it
        waiter = threading.Thread(target=lambda: (viewer.wait_idle(), done.append(1)))
        waiter.start()
        time.sleep(0.2)
        assert not done  # still waiting
    waiter.join(5)
    assert done
