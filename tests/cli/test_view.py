"""``lcmap view``: the PNG without a server, and the one-line errors of the command."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.viewer.server import ViewerServer


def test_png_without_a_server(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "look.png"
    done = CliRunner().invoke(
        app, ["view", str(files["map"]), str(files["scene"]), "--png", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"\x89PNG")
    again = CliRunner().invoke(app, ["view", str(files["map"]), "--png", str(out)])
    assert again.exit_code != 0 and "exists" in again.output


def test_a_scene_is_not_a_map(files: dict[str, Path]) -> None:
    done = CliRunner().invoke(app, ["view", str(files["scene"]), "--no-browser"])
    assert done.exit_code != 0
    assert "not a label map" in done.output


def test_the_remote_hint_names_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from lcmap.cli.view import remote_hint

    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    assert remote_hint(8765) is None
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.2 5555 10.0.0.1 22")
    assert "ssh -N -L 8765:127.0.0.1:8765" in (remote_hint(8765) or "")


def test_a_port_in_use_is_one_line(files: dict[str, Path], server: ViewerServer) -> None:
    port = str(server.server_address[1])
    done = CliRunner().invoke(app, ["view", str(files["map"]), "--port", port, "--no-browser"])
    assert done.exit_code == 1
    assert "Cannot listen" in done.output and "--port 0" in done.output
