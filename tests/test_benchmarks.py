"""The benchmark scripts keep working as the library changes: they import only public names of
lcmap, each starts (its ``--help``) in a fresh interpreter, and the quick ones run end to end on
tiny data."""

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lcmap.workflows.specs import MethodSpec, RunSpec

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


ROOT = BENCHMARKS.parent
SAMPLE = ROOT / "sample_data" / "naip_2020_rgbn.tif"
MR_DEV = ROOT / ".." / "shared" / "data" / "mr_dev"
#: Every benchmark, run end to end on tiny data in seconds (its quick mode) as a user would run
#: it; its JSON, where it writes one, must hold figures.
TINY_RUNS = {
    "pipeline_cost.py": [str(SAMPLE), "--repeats", "1", "--json", "{out}"],
    "cog_writer.py": ["--size", "1024", "--repeats", "1"],
    "segment_stages.py": [str(SAMPLE)],
    "reader_stages.py": [str(SAMPLE), "--tiles", "2"],
    "view_tiles.py": ["--map", "{map}", "--scene", str(SAMPLE), "--tiles", "2", "--json", "{out}"],
    "quality_spectral.py": [
        *("--sets", "zion", "--every", "4", "--rows", "pixel", "chromaticity", "lcmap"),
        *("--json", "{out}"),
    ],
    "vectorize_memory.py": ["{map}", "--json", "{out}"],
    "scale_out.py": ["--size", "1000", "--workdir", "{work}", "--json", "{out}"],
    "segment_throughput.py": ["--sizes", "1000", "--workdir", "{work}", "--json", "{out}"],
    "quality_unsupervised.py": ["--every", "9", "--runs", "kmeans", "--json", "{out}"],
    "quality_stego.py": [
        *("--every", "27", "--layers", "8", "-p", "crops=4", "-p", "steps=2"),
        *("--json", "{out}"),
    ],
    "tiling_consistency.py": [
        *(str(SAMPLE), "--tiles", "256", "512", "-k", "4"),
        *("-p", "crops=4", "-p", "steps=2", "--json", "{out}"),
    ],
    "quality_cas.py": ["--quick", "--out", "{work}", "--inits", "cas", "--sampling", "suggested"],
    "kmeans_kernel.py": ["--tile", "128", "--repeats", "1"],
    "stego_throughput.py": [
        *("--size", "224", "--backbones", "vit_small_patch14_dinov2", "--batch-size", "2"),
        *("--device", "cpu", "--json", "{out}"),
    ],
    "pretrain_cost.py": [
        *("--device", "cpu", "--cpu-steps", "1", "--encoder", "unet"),
        *("--workdir", "{work}", "--json", "{out}"),
    ],
    "map_speed.py": [
        *("--out", "{work}", "--tag", "smoke", "--only", "simclr", "--quick"),
        *("--json", "{out}"),
    ],
    "device_throughput.py": [
        "--device",
        "cpu",
        "--quick",
        "--workdir",
        "{work}",
        "--json",
        "{out}",
    ],
    "pictures.py": ["--out", "{work}", "--scenes", "dubai_t5_4", "--methods", "kmeans"],
    "quality_encoders.py": ["--quick", "--out", "{work}", "--rows", "random,simclr linear"],
    "same_maps.py": [
        *("--scenes", "dubai_t1_1", "--size", "128", "--runs", "kmeans", "cas", "simclr"),
    ],
    "quality_single_scene.py": [
        "--scenes",
        "dubai_t5_1",
        "-k",
        "5",
        "--kmeans",
        "--skip-single-scene",
    ],
}
#: Those that read ``../shared`` (the dev scenes, the offline ViT weights).
NEEDS_SHARED = {
    "quality_spectral.py",
    "quality_unsupervised.py",
    "quality_stego.py",
    "tiling_consistency.py",
    "quality_cas.py",
    "quality_single_scene.py",
    "pictures.py",
    "quality_encoders.py",
    "same_maps.py",
}


def test_every_benchmark_has_a_tiny_run() -> None:
    assert {p.name for p in SCRIPTS} == set(TINY_RUNS)


@pytest.mark.parametrize("script", sorted(TINY_RUNS))
def test_a_benchmark_runs_end_to_end_on_tiny_data(script: str, tmp_path: Path) -> None:
    if script in NEEDS_SHARED and not MR_DEV.exists():
        pytest.skip("../shared/data is not here")
    label_map = tmp_path / "map.tif"
    if "{map}" in TINY_RUNS[script]:
        from lcmap import api

        api.segment(SAMPLE, label_map, method=MethodSpec("kmeans", classes=4), run=RunSpec(seed=0))
    out = tmp_path / "out.json"
    args = [a.format(out=out, map=label_map, work=tmp_path / "work") for a in TINY_RUNS[script]]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if "{out}" in TINY_RUNS[script]:
        figures = json.loads(out.read_text())
        if isinstance(figures, list):  # one row a run
            numbers = [v for row in figures for v in row.values() if isinstance(v, int | float)]
            assert figures and numbers, figures
        else:
            assert figures and all(v is not None for v in figures.values())
        if script == "scale_out.py":
            assert figures["identical"]  # the map made in parts is the map made in one go
