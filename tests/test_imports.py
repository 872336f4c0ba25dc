"""Layering: the modules that read, write and score files never import torch (or timm).

Each import runs in a fresh interpreter, so what another test imported does not count.
"""

import subprocess
import sys

import pytest

TORCH_FREE = [
    "lcmap", "lcmap.api", "lcmap.cli", "lcmap.errors", "lcmap.types", "lcmap.tiling",
    "lcmap.stitch", "lcmap.io.scene", "lcmap.io.writer", "lcmap.io.vector", "lcmap.io.labels",
    "lcmap.io.staging", "lcmap.models", "lcmap.eval", "lcmap.eval.metrics", "lcmap.eval.report",
    "lcmap.methods", "lcmap.methods.options", "lcmap.methods.configs", "lcmap.nets",
    "lcmap.fewshot.finetune", "lcmap.fewshot.suggest", "lcmap.fewshot.encoder", "lcmap.io.stack",
    "lcmap.cli.pretrain", "lcmap.nets.fetch",
]  # fmt: skip


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted({{'torch', 'timm'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} imports {done.stdout.strip()}"
