"""The benchmark scripts keep working as the library changes: they import only public names of
lcmap, and each starts (its ``--help``) in a fresh interpreter."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if '__name__ == "__main__"' in p.read_text())


def _lcmap_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from lcmap... import name`` in ``path``, function level too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lcmap"):
            found += [(node.module or "", alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_a_benchmark_imports_only_public_names_that_exist(script: Path) -> None:
    for module, name in _lcmap_imports(script):
        assert not any(part.startswith("_") for part in module.split(".")), (script.name, module)
        assert not name.startswith("_"), (script.name, module, name)
        imported = importlib.import_module(module)
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (
            f"{script.name}: {module} has no {name}"
        )


def test_every_benchmark_script_starts() -> None:
    assert len(SCRIPTS) >= 15  # the glob found them
    failed = []
    for script in SCRIPTS:
        done = subprocess.run(
            [sys.executable, str(script), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=BENCHMARKS,
        )
        if done.returncode != 0:
            failed.append(f"{script.name}: {done.stderr.strip().splitlines()[-1:]}")
    assert failed == [], failed
