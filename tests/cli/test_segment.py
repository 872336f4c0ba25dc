"""``lcmap segment`` on the command line: outputs, creation and run options checked first."""

import os
import time

import pytest

from tests.cli._cli import one_line_error, run


@pytest.mark.parametrize("target", ["-", "/vsistdout/", "/vsimem/m.tif"])
def test_stdout_and_virtual_outputs_are_refused(make_scene, tmp_path, target):
    out = one_line_error(run("segment", make_scene(), "-o", target, "-q"))
    assert "not a local file" in out
    assert not os.path.exists(os.path.join(os.sep, "vsistdout")) and not os.path.exists("-")


def test_a_map_must_be_named_tif(make_scene, tmp_path):
    out = one_line_error(run("segment", make_scene(), "-o", tmp_path / "out.png", "-q"))
    assert ".tif" in out and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "co,message",
    [
        ("FOO=BAR", "Unknown COG creation option FOO"),
        ("BLOKSIZE=256", "did you mean BLOCKSIZE"),
        ("BLOCKSIZE=0", "multiple of 16"),
        ("BLOCKSIZE=7", "multiple of 16"),
        ("BLOCKSIZE=abc", "whole number"),
        ("BLOCKSIZE=99999999", "multiple of 16"),
        ("COMPRESS=JPEG", "COMPRESS=JPEG is not valid"),
    ],
)
def test_creation_options_are_checked_before_any_work(make_scene, tmp_path, co, message):
    start = time.perf_counter()
    out = one_line_error(run("segment", make_scene(), "-o", tmp_path / "m.tif", "--co", co, "-q"))
    assert message in out and time.perf_counter() - start < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-1"], "Invalid value for '--seed'"),
        (["--seed", str(2**33)], "Invalid value for '--seed'"),
        (["--halo", "100000"], "--halo 100000 is out of range"),
        (["--device", "meta"], "Unknown device 'meta'"),
    ],
)
def test_out_of_range_run_options_are_one_line(make_scene, tmp_path, args, message):
    out = run("segment", make_scene(), "-o", tmp_path / "m.tif", *args, "-q").output
    assert message in out and "Traceback" not in out
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.parametrize("flag", ["--stack", "--preview"])
def test_stack_and_preview_go_with_one_scene(make_scene, tmp_path, flag):
    scenes = [make_scene("a.tif", width=64, height=64), make_scene("b.tif", width=64, height=64)]
    value = scenes[0] if flag == "--stack" else tmp_path / "p.png"
    result = run("segment", *scenes, "-o", tmp_path / "maps", flag, value, "-q")
    assert result.exit_code == 2 and f"{flag} goes with one scene" in result.output
    assert not (tmp_path / "maps").exists() and not (tmp_path / "p.png").exists()
