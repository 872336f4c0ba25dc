"""Library messages name the API's keywords; the command line shows its flags instead."""

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.cli._app import cli_message

LIBRARY = Path(__file__).resolve().parents[2] / "lcmap"


def _raised_strings() -> list[tuple[str, int, str]]:
    """(file, line, text) of every string literal inside a ``raise`` outside ``lcmap/cli``."""
    found = []
    for path in LIBRARY.rglob("*.py"):
        if "cli" in path.relative_to(LIBRARY).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for sub in ast.walk(node.exc):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        found.append((path.name, node.lineno, sub.value))
    return found


def test_no_library_error_names_a_command_line_flag():
    strings = _raised_strings()
    assert len(strings) > 100  # the walk found the library's messages
    flags = [(f, n, s) for f, n, s in strings if " --" in f" {s}" and "rio " not in s]
    assert not flags, flags


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("m.tif exists; pass overwrite=True to replace it.", "m.tif exists; pass --overwrite to"),
        ("use bands= with numbers from 1 to 4.", "use --bands with numbers"),
        ("Give workers= (a new local cluster) or scheduler=, not both.", "--scheduler, not both"),
        ("workers=5000 is out of range", "--workers 5000 is out of range"),
        ("say which holds the class (class_column=).", "(--class-column)."),
        ("num_classes=3 stays as it is", "num_classes=3 stays"),
    ],
)
def test_keywords_become_flags(text, shown):
    assert shown in cli_message(text)


def test_an_existing_output_is_reported_with_the_flag(tmp_path, make_scene):
    scene = make_scene()
    out = tmp_path / "map.tif"
    out.write_bytes(b"keep")
    result = CliRunner().invoke(app, ["segment", str(scene), "-o", str(out), "-m", "kmeans"])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert "overwrite=True" not in result.output and out.read_bytes() == b"keep"
