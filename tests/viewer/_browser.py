"""A headless Chromium driven over the DevTools protocol (through tornado's WebSocket client,
which dask's distributed already installs): open a page, run JavaScript, click, screenshot."""

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


class Browser:
    """One headless Chromium with one page at ``url``; use as a context manager."""

    def __init__(self, url: str, width: int = 1100, height: int = 700) -> None:
        assert CHROMIUM is not None
        # Chromium's helper processes may still be writing as it exits: clean up what can be.
        self._profile = tempfile.TemporaryDirectory(
            prefix="lcmap-chromium-", ignore_cleanup_errors=True
        )
        # Chromium's messages go to a file (a pipe nobody reads could fill and stall it).
        self._log = Path(self._profile.name) / "chromium.log"
        with self._log.open("w") as log:
            self._proc = subprocess.Popen(
                [
                    CHROMIUM,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--no-default-browser-check",
                    f"--user-data-dir={self._profile.name}",
                    "--remote-debugging-port=0",
                    f"--window-size={width},{height}",
                    url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its helpers in one group, stopped together
            )
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            if m := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", self._log.read_text()):
                port = int(m.group(1))
            elif self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}")
            else:
                time.sleep(0.05)
        if port is None:
            raise RuntimeError("chromium did not open its DevTools port")
        pages: list[dict[str, Any]] = []
        while not pages and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
                pages = [t for t in json.load(reply) if t["type"] == "page"]
        self._ws_url = pages[0]["webSocketDebuggerUrl"]
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._ws: Any = self._loop.run_until_complete(self._connect())

    async def _connect(self) -> Any:
        from tornado.websocket import websocket_connect

        return await websocket_connect(self._ws_url, max_message_size=256 * 2**20)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        n = next(self._ids)
        await self._ws.write_message(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            message = json.loads(await self._ws.read_message())
            if message.get("id") == n:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its result."""
        return self._loop.run_until_complete(asyncio.wait_for(self._call(method, params), 60))

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:  # the page is not there yet
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"never true: {expression}")

    def click(self, x: float, y: float) -> None:
        """A real left click (press and release) at page coordinates (x, y)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):  # closing a page that is gone
            self._loop.run_until_complete(asyncio.wait_for(self._close(), 10))
        self._loop.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        self._profile.cleanup()

    async def _close(self) -> None:
        self._ws.close()
