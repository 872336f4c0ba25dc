"""``lcmap.scale``: a run in parts kept beside the output, killed and resumed, is the same map.

The contract: however a map is computed (one process streaming rows, parts here, parts on a
``LocalCluster`` of worker processes, a run killed and resumed, a worker killed mid-run), it
is the same map.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lcmap import api
from lcmap.errors import InvalidOptionError, OutputPathError
from lcmap.scale import parts_folder
from lcmap.workflows import fitting
from lcmap.workflows.specs import MethodSpec, RunSpec, ScaleSpec, TilingSpec
from tests.scale._scale_data import SAMPLE


def test_a_killed_run_resumes_to_the_byte_identical_map(
    tmp_path: Path, stego_model: tuple[Path, Path]
) -> None:
    """SIGKILL the CLI once some parts are finished; ``--resume`` reuses them and the map is
    byte-identical to an uninterrupted run."""
    crop, model = stego_model
    whole, out = tmp_path / "whole.tif", tmp_path / "out.tif"
    args = [
        "segment",
        str(crop),
        "--model",
        str(model),
        "--tile",
        "32",
        "--part-rows",
        "1",
        "--device",
        "cpu",
        "--resume",
        "-q",
    ]
    api.segment(
        crop,
        whole,
        model=model,
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=32),
        scale=ScaleSpec(resume=True, part_rows=1),
    )
    folder = parts_folder(out)
    proc = subprocess.Popen([sys.executable, "-m", "lcmap", *args, "-o", str(out)])
    deadline = time.monotonic() + 120
    while len(list(folder.glob("part-*.json"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and folder.is_dir()
    finished = len(list(folder.glob("part-*.json")))
    result = api.segment(
        crop,
        out,
        model=model,
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=32),
        scale=ScaleSpec(resume=True, part_rows=1),
    )
    assert result.parts_reused >= finished >= 3
    assert result.parts_computed == 10 - result.parts_reused < 10
    assert out.read_bytes() == whole.read_bytes()


def test_a_resumed_run_does_not_fit_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted run that fitted its method kept the model with its parts: resuming
    reuses both, and the map is the uninterrupted run's."""
    out, whole = tmp_path / "out.tif", tmp_path / "whole.tif"
    how: dict[str, Any] = {
        "method": MethodSpec("kmeans", classes=4),
        "scale": ScaleSpec(resume=True, part_rows=1),
        "tiling": TilingSpec(tile=128),
    }
    api.segment(SAMPLE, whole, run=RunSpec(device="cpu"), **how)

    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.segment(SAMPLE, out, run=RunSpec(device="cpu", progress=interrupt), **how)
    assert not out.exists() and (parts_folder(out) / "model.lcmap").is_file()

    def no_fit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fitted again")

    monkeypatch.setattr(fitting, "fit_method", no_fit)
    result = api.segment(SAMPLE, out, run=RunSpec(device="cpu"), **how)
    assert result.parts_reused == 2 and result.provenance["model"] is None
    assert out.read_bytes() == whole.read_bytes()


def test_a_different_request_starts_the_parts_again(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    folder = parts_folder(out)
    folder.mkdir()
    (folder / "run.json").write_text('{"scene": "another"}')
    (folder / "part-00000.json").write_text("{}")
    result = api.segment(
        SAMPLE,
        out,
        method=MethodSpec("kmeans", classes=4),
        run=RunSpec(device="cpu"),
        tiling=TilingSpec(tile=256),
        scale=ScaleSpec(resume=True),
    )
    assert result.parts_reused == 0 and out.exists() and not folder.exists()


def test_a_foreign_folder_in_the_parts_place_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    parts_folder(out).mkdir()
    (parts_folder(out) / "mine.txt").write_text("not lcmap's")
    with pytest.raises(OutputPathError, match="not made by lcmap"):
        api.segment(
            SAMPLE, out, method="kmeans", run=RunSpec(device="cpu"), scale=ScaleSpec(resume=True)
        )
    assert (parts_folder(out) / "mine.txt").exists() and not out.exists()


def test_api_refuses_bad_part_rows(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="part_rows="):
        api.segment(
            SAMPLE, tmp_path / "m.tif", method="kmeans", scale=ScaleSpec(resume=True, part_rows=0)
        )
