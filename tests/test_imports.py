"""Layering: the modules that read, write and score files never import torch (or timm).

Each import runs in a fresh interpreter, so what another test imported does not count.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

TORCH_FREE = [
    "lcmap",
    "lcmap.api",
    "lcmap.cli",
    "lcmap.errors",
    "lcmap.types",
    "lcmap.tiling",
    "lcmap.stitch",
    "lcmap.io.scene",
    "lcmap.io.writer",
    "lcmap.io.vector",
    "lcmap.io.labels",
    "lcmap.io.staging",
    "lcmap.models",
    "lcmap.eval",
    "lcmap.eval.metrics",
    "lcmap.eval.report",
    "lcmap.methods",
    "lcmap.methods.options",
    "lcmap.methods.configs",
    "lcmap.nets",
    "lcmap.workflows.finetune",
    "lcmap.workflows.suggest",
    "lcmap.workflows.patch_choice",
    "lcmap.methods.fewshot",
    "lcmap.io.stack",
    "lcmap.cli.pretrain",
    "lcmap.nets.fetch",
    "lcmap.viewer.server",
    "lcmap.cli.view",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted({{'torch', 'timm'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} imports {done.stdout.strip()}"


# Floors, top first: a module imports only from its own floor or the ones below it.
FLOORS = [
    ("lcmap.cli", 0),
    ("lcmap.__main__", 0),
    ("lcmap.api", 1),
    ("lcmap.workflows", 2),
    ("lcmap.viewer", 2),
    ("lcmap.scale", 3),
    ("lcmap.engine", 3),
    ("lcmap.eval", 3),
    ("lcmap.sampling", 3),
    ("lcmap.methods", 4),
    ("lcmap.nets", 5),
    ("lcmap.models", 5),
    ("lcmap.io", 6),
    ("lcmap.stitch", 7),
    ("lcmap.tiling", 7),
    ("lcmap.types", 7),
    ("lcmap.errors", 8),
]
PACKAGE = Path(__file__).resolve().parents[1] / "lcmap"


def _floor(module: str) -> int | None:
    for prefix, floor in FLOORS:
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def _imports() -> dict[str, set[str]]:
    """Each lcmap module's lcmap imports, function-level ones included, type-checking ones not."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        names: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lcmap"):
                names.add(node.module or "")
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names if a.name.startswith("lcmap")}
        found[module] = names - {module, "lcmap"}
    return found


def test_imports_run_down_the_floors_only() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        for target in targets
        if (low := _floor(module)) is not None
        and (high := _floor(target)) is not None
        and high < low
    ]
    assert upward == [], upward


def test_no_two_modules_import_each_other_in_a_loop() -> None:
    graph = _imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if nxt == goal:
                    return True
                if nxt not in seen and nxt in graph:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    # A package's __init__ gathering its own modules is not a loop of the layering.
    loops = [
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if b in graph and not a.startswith(b + ".") and not b.startswith(a + ".") and reaches(b, a)
    ]
    assert loops == [], loops
