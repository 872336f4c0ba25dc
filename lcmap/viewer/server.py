"""The viewer's local web server: the page, tiles, legend, point values, and naming classes.

Only the files given on the command line are ever read: a request names a layer by its number,
never by a path. Naming classes in the page writes a *new* map (and model) beside the old ones
through the same code as ``lcmap classes``, never over an existing file, and the page then shows
the new map. The server answers only requests addressed to its own host and port (a web page
elsewhere cannot reach it through a DNS name pointed at 127.0.0.1), and changes files only on a
JSON request, which a page from another origin cannot send without a preflight it never gets.
"""

import json
import logging
import re
import threading
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lcmap.errors import LcmapError
from lcmap.viewer.tiles import MapView, SceneView
from lcmap.workflows.classes import name_classes

log = logging.getLogger(__name__)

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/viewer.css": ("viewer.css", "text/css; charset=utf-8"),
}
_MAP_TILE = re.compile(r"/tiles/map/(\d{1,2})/(\d{1,8})/(\d{1,8})\.png")
_SCENE_TILE = re.compile(r"/tiles/scene/(\d{1,3})/(\d{1,2})/(\d{1,8})/(\d{1,8})\.png")
#: Largest request body accepted (a naming request is a few hundred bytes).
_MAX_BODY = 1 << 16


def free_name(path: Path, tag: str) -> Path:
    """``name.<tag>.ext`` beside ``path``, or ``name.<tag>-2.ext`` ... whichever does not exist."""
    stem, suffix = path.name[: -len(path.suffix)] if path.suffix else path.name, path.suffix
    for n in range(1, 1000):
        candidate = path.with_name(f"{stem}.{tag}{'' if n == 1 else f'-{n}'}{suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise LcmapError(f"No free name for a {tag} copy of {path} (1000 taken).")


class Viewer:
    """The state behind the page: the map shown (it changes when classes are named), its
    model, and the scenes under it.

    Args:
        label_map: the map to show.
        scenes: scenes to show under it.
        bands: the scenes' bands shown as red, green, blue.
        model: the model that made the map; naming classes in the page rewrites it too.
    """

    def __init__(
        self,
        label_map: Path,
        scenes: Sequence[Path] = (),
        bands: Sequence[int] | None = None,
        model: Path | None = None,
    ) -> None:
        self.map = MapView(Path(label_map))
        self.scenes = [SceneView(Path(s), tuple(bands) if bands else None) for s in scenes]
        self.model = model
        self.version = 0
        self._lock = threading.Lock()
        self.map.count_exactly()

    def wait_idle(self) -> None:
        """Return once no map is being written (a stop waits for it: never half a map)."""
        with self._lock:
            pass

    def info(self) -> dict[str, Any]:
        """What the page needs to draw itself."""
        view = self.map
        return {
            "title": view.path.name,
            "version": self.version,
            "bounds": view.bounds,
            "maxzoom": view.maxzoom,
            "classes": view.legend.rows(),
            "exact": view.legend.exact,
            "scenes": [{"name": s.path.name, "bands": list(s.bands or ())} for s in self.scenes],
            "model": self.model.name if self.model else None,
        }

    def point(self, lon: float, lat: float) -> dict[str, Any]:
        """The class and every scene's band values at (lon, lat)."""
        value = self.map.value_at(lon, lat)
        names = self.map.legend.names
        return {
            "lon": lon,
            "lat": lat,
            "class": value,
            "name": names[value] if value is not None and 0 <= value < len(names) else None,
            "scenes": [{"name": s.path.name, "values": s.values_at(lon, lat)} for s in self.scenes],
        }

    def rename(self, names: dict[int, str]) -> dict[str, Any]:
        """Write the map (and model) with ``names`` (old id -> name; one name merges) as new
        files beside the old ones, then show the new map."""
        with self._lock:
            old = self.map.path
            output = free_name(old, "named")
            save_model = free_name(self.model, "named") if self.model else None
            name_classes(
                [old], output, names, model=self.model, save_model=save_model, overwrite=False
            )
            self.map = MapView(output)
            self.map.count_exactly()
            self.model = save_model
            self.version += 1
            log.warning("Wrote %s%s", output, f" and {save_model}" if save_model else "")
            return {"map": str(output), "model": str(save_model) if save_model else None}


class _Handler(BaseHTTPRequestHandler):
    server: "ViewerServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, kind: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _host_ok(self) -> bool:
        hosts = self.server.hosts
        return hosts is None or self.headers.get("Host", "") in hosts

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unknown host")
        url = urlsplit(self.path)
        viewer = self.server.viewer
        try:
            if url.path in _STATIC:
                name, kind = _STATIC[url.path]
                page = resources.files("lcmap.viewer").joinpath("static", name).read_bytes()
                return self._send(HTTPStatus.OK, page, kind)
            if url.path == "/info.json":
                return self._json(viewer.info())
            query = parse_qs(url.query)
            if url.path == "/point":
                lon, lat = float(query["lon"][0]), float(query["lat"][0])
                return self._json(viewer.point(lon, lat))
            if m := _MAP_TILE.fullmatch(url.path):
                highlight = int(query["highlight"][0]) if "highlight" in query else None
                z, x, y = (int(v) for v in m.groups())
                return self._png(viewer.map.tile(z, x, y, highlight))
            if m := _SCENE_TILE.fullmatch(url.path):
                n, z, x, y = (int(v) for v in m.groups())
                if n >= len(viewer.scenes):
                    return self._error(HTTPStatus.NOT_FOUND, "no such scene")
                return self._png(viewer.scenes[n].tile(z, x, y))
        except (KeyError, ValueError) as exc:
            return self._error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")
        return self._error(HTTPStatus.NOT_FOUND, "not found")

    def _png(self, png: bytes | None) -> None:
        if png is None:
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(HTTPStatus.OK, png, "image/png", cache=True)

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "unknown host")
        if urlsplit(self.path).path != "/classes":
            return self._error(HTTPStatus.NOT_FOUND, "not found")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_BODY:
            return self._error(HTTPStatus.BAD_REQUEST, "bad length")
        try:
            body = json.loads(self.rfile.read(length))
            names = {int(k): str(v).strip() for k, v in body["names"].items() if str(v).strip()}
            if not names:
                return self._error(HTTPStatus.BAD_REQUEST, "no class was named")
            return self._json(self.server.viewer.rename(names))
        except LcmapError as exc:  # before ValueError: some are both
            return self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return self._error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")


class ViewerServer(ThreadingHTTPServer):
    """A threaded HTTP server for one :class:`Viewer`, on ``host``:``port`` (0: any free port)."""

    daemon_threads = True

    def __init__(self, viewer: Viewer, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.viewer = viewer
        bound = self.server_address[1]
        # On the loopback only the names of the loopback are answered (see the module's
        # docstring); a user who binds a public address has chosen to be reached by any name.
        loopback = host in ("127.0.0.1", "localhost", "::1")
        names = {host, "127.0.0.1", "localhost", "[::1]"}
        self.hosts = {f"{name}:{bound}" for name in names} if loopback else None

    @property
    def url(self) -> str:
        host = self.server_address[0]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://{host}:{self.server_address[1]}/"
