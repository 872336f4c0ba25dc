"""GIS conventions and robustness of the command line, common to every command (issue 12)."""

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.workflows.specs import MethodSpec
from tests.cli._cli import one_line_error, run


def test_an_existing_output_is_refused_before_torch_is_imported(make_scene, tmp_path):
    (tmp_path / "m.tif").write_bytes(b"keep")
    code = (
        "import sys\nfrom lcmap.cli import main\nsys.argv = ['lcmap', 'segment', sys.argv[1], "
        "'-o', sys.argv[2], '-q']\ntry:\n    main()\nexcept SystemExit as e:\n"
        "    print('torch' in sys.modules, e.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(make_scene()), str(tmp_path / "m.tif")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split() == ["False", "1"], done.stdout + done.stderr
    assert "exists" in done.stderr and (tmp_path / "m.tif").read_bytes() == b"keep"


def test_version_shows_gdal_and_torch():
    r = run("--version")
    assert r.exit_code == 0
    for name in ("lcmap:", "GDAL:", "torch:", "CUDA:"):
        assert name in r.output


def test_version_does_not_import_torch():
    """torch takes seconds to import; its version comes from the package metadata."""
    code = (
        "import sys; from lcmap.cli import main; sys.argv = ['lcmap', '--version']\n"
        "try:\n    main()\nexcept SystemExit:\n    print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout + done.stderr


def test_methods_takes_quiet_and_verbose():
    assert run("methods", "-q").exit_code == 0
    assert run("methods", "kmeans", "-v").exit_code == 0


def test_verbosity_flags_work_before_the_command(make_scene, tmp_path):
    r = run("-q", "segment", make_scene(), "-o", tmp_path / "m.tif", "-k", "3")
    assert r.exit_code == 0 and r.output.strip() == "", r.output


def test_gdal_virtual_paths_are_accepted_as_input(make_scene, tmp_path):
    scene = make_scene()
    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(scene, "inner/scene.tif")
    r = run(
        "segment", f"/vsizip/{archive}/inner/scene.tif", "-o", tmp_path / "m.tif", "-k", "3", "-q"
    )
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "m.tif") as src, rasterio.open(scene) as ref:
        assert (src.width, src.height, src.transform) == (ref.width, ref.height, ref.transform)
    # A plain local path that does not exist is still a clear "not found".
    missing = run("segment", tmp_path / "nope.tif", "-o", tmp_path / "n.tif", "-q")
    missing = one_line_error(missing)
    assert "not found" in missing


def test_an_alpha_band_is_the_mask_not_a_data_band(tmp_path):
    from lcmap import api

    rng = np.random.default_rng(0)
    rgb = rng.integers(10, 240, (3, 120, 140), dtype=np.uint8)
    alpha = np.full((120, 140), 255, np.uint8)
    alpha[:50, :40] = 0  # 2000 transparent pixels
    path = tmp_path / "rgba.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=140,
        height=120,
        count=4,
        dtype="uint8",
        photometric="RGB",
        alpha="YES",
        crs="EPSG:32618",
        transform=rasterio.transform.from_origin(5e5, 4e6, 1, 1),
    ) as dst:
        dst.write(np.concatenate([rgb, alpha[None]]))
    result = api.segment(path, tmp_path / "m.tif", method=MethodSpec(classes=3))
    assert result.provenance["bands"] == [1, 2, 3]
    with rasterio.open(tmp_path / "m.tif") as src:
        labels = src.read(1)
    assert (labels[:50, :40] == 255).all() and (labels[50:] != 255).all()
    assert result.nodata_pixels == 2000


# -- signals and leftovers ---------------------------------------------------------------


def test_sigterm_leaves_nothing_behind(make_scene, tmp_path):
    scene = make_scene(width=2500, height=2500)
    out = tmp_path / "m.tif"
    code = "from lcmap.cli import main; main()"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "segment",
            str(scene),
            "-o",
            str(out),
            "-p",
            "smooth=2",
            "--tile",
            "256",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(".partial" in p.name for p in tmp_path.iterdir()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.parametrize(
    ("signal_class", "code"), [("Terminated", 143), ("KeyboardInterrupt", 130)]
)
def test_an_error_while_unwinding_after_a_signal_exits_as_the_signal(
    tmp_path, capsys, signal_class, code
):
    """A signal that lands inside a library's cleanup can make it fail in turn (rasterio:
    'No GDAL environment exists'); the run still ends as interrupted, with the signal's exit
    code, and what it had made is removed."""
    import typer

    from lcmap.cli import _app
    from lcmap.io import staging

    interrupt = _app.Terminated if signal_class == "Terminated" else KeyboardInterrupt
    left = staging.temp_path(tmp_path / "m.tif", ".partial.tif")
    with pytest.raises(typer.Exit) as done, _app.reported_errors():
        try:
            raise interrupt()
        finally:
            raise OSError("No GDAL environment exists")
    assert done.value.exit_code == code
    assert "no output was written" in capsys.readouterr().err
    assert not left.exists()


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(make_scene, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer exists
    stale = tmp_path / f".m.tif.lcmap{dead.pid}.abc123.partial.tif"
    stale_dir = tmp_path / f".m.tif.lcmap{dead.pid}.def456"
    live = tmp_path / f".m.tif.lcmap{os.getppid()}.ghi789.partial.tif"
    stale.write_bytes(b"x")
    stale_dir.mkdir()
    live.write_bytes(b"x")
    r = run("segment", make_scene(), "-o", tmp_path / "m.tif", "-k", "3", "-q")
    assert r.exit_code == 0, r.output
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists()  # a live process may still be writing it


@pytest.mark.parametrize("command", ["segment", "train", "vectorize"])
def test_a_file_size_limit_is_one_line_and_leaves_nothing(make_scene, tmp_path, command):
    """``ulimit -f`` stands in for a full disk: the write fails with EFBIG."""
    scene = make_scene(width=1500, height=1500)
    before = ["scene.tif"]
    if command == "vectorize":
        assert run("segment", scene, "-o", tmp_path / "map.tif", "-k", "3", "-q").exit_code == 0
        before = sorted(p.name for p in tmp_path.iterdir())
        scene = tmp_path / "map.tif"
    suffix = {"segment": "m.tif", "train": "m.lcmap", "vectorize": "m.gpkg"}[command]
    args = {"segment": ["-k", "3"], "train": ["-m", "kmeans"], "vectorize": []}[command]
    limit = {"segment": 4, "train": 1, "vectorize": 8}[command]
    code = "from lcmap.cli import main; main()"
    cmd = " ".join(
        [
            f"ulimit -f {limit};",
            sys.executable,
            "-c",
            f"'{code}'",
            command,
            str(scene),
            "-o",
            str(tmp_path / suffix),
            "-q",
            *args,
        ]
    )
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    # libtiff's own "_tiffWriteProc: File too large." lines are silenced too (-v shows them)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert "file-size limit" in done.stderr or "full" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "param,message",
    [
        ("foo=1", "has no option 'foo'; its options: in_channels, num_classes, samples"),
        ("smoth=2", "did you mean smooth?"),
        ("smooth=1000000", "smooth=1000000 must be from 0 to 100"),
        ("samples=inf", "must be a finite number"),
        ("samples=1e400", "must be a finite number"),
        ("samples=2.5", "must be a whole number"),
    ],
)
def test_method_options_are_checked_in_one_line(make_scene, tmp_path, param, message):
    out = one_line_error(run("segment", make_scene(), "-o", tmp_path / "m.tif", "-p", param, "-q"))
    assert message in out


def test_a_model_whose_config_is_out_of_range_is_refused(make_scene, tmp_path):
    import json
    import struct

    from safetensors.torch import load_file, save_file

    scene = make_scene()
    model = tmp_path / "k.lcmap"
    assert run("train", scene, "-m", "kmeans", "-k", "3", "-o", model, "-q").exit_code == 0
    with open(model, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(json.loads(fh.read(size))["__metadata__"]["lcmap"])
    header["config"]["smooth"] = 1_000_000
    save_file(load_file(str(model)), str(model), metadata={"lcmap": json.dumps(header)})
    out = one_line_error(run("segment", scene, "-o", tmp_path / "m.tif", "--model", model, "-q"))
    assert "config does not fit" in out and "smooth" in out


def test_a_corrupt_map_given_to_evaluate_is_one_line(make_scene, tmp_path):
    scene = make_scene()
    assert run("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q").exit_code == 0
    data = (tmp_path / "m.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    out = one_line_error(run("evaluate", tmp_path / "cut.tif", tmp_path / "m.tif", "-q"))
    assert "truncated or corrupt" in out and "cut.tif" in out
    (tmp_path / "index.csv").write_bytes(bytes(range(256)) * 4)
    out = one_line_error(run("evaluate-index", tmp_path / "index.csv", "-q"))
    assert "not a UTF-8 CSV" in out


def test_options_of_a_config_dataclass_are_checked_by_name():
    from lcmap.errors import InvalidOptionError
    from lcmap.methods import get_method

    with pytest.raises(InvalidOptionError, match="did you mean iterations"):
        get_method("single_scene", num_classes=4, iteration=3)


def test_progress_is_a_line_per_stage_when_stderr_is_not_a_terminal(make_scene, tmp_path):
    """A log file gets a line as each stage starts and at each tenth, with the time left."""
    code = "from lcmap.cli import main; main()"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "segment",
            str(make_scene()),
            "-o",
            str(tmp_path / "m.tif"),
            "-k",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "fit kmeans: started" in lines and "write COG: started" in lines
    assert any(line.startswith("fit kmeans: ") and "(100%)" in line for line in lines)
    assert "\x1b[" not in done.stderr  # no terminal control codes in a log


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("train", "--epochs"),
        ("train", "--lr"),
        ("train", "--crop-size"),
        ("train", "--iterations"),
        ("train", "--batch-size"),
        ("finetune", "--steps"),
        ("finetune", "--epochs"),
        ("finetune", "--lr"),
        ("finetune", "--crop-size"),
        ("finetune", "--head"),
        ("finetune", "--train-encoder"),
        ("pretrain", "--epochs"),
        ("pretrain", "--steps"),
        ("pretrain", "--lr"),
        ("pretrain", "--temperature"),
        ("pretrain", "--crop-size"),
        ("train-single-scene", "--epochs"),
        ("train-single-scene", "--iterations"),
        ("train-single-scene", "--crop-size"),
    ],
)
def test_method_options_have_one_door(command, flag):
    """A method's own options are given with -p KEY=VALUE only: the flags that copied them,
    and meant something else for each method, are gone (and say so in one line)."""
    wide = {"COLUMNS": "200", "NO_COLOR": "1"}
    assert flag not in CliRunner().invoke(app, [command, "--help"], env=wide).output
    result = CliRunner().invoke(app, [command, "x.tif", flag, "3", "-o", "m.lcmap"], env=wide)
    assert result.exit_code == 2 and "No such option" in result.output


def _shared_flags() -> set[str]:
    """The flags of the option types every command shares (``_options.py``, ``_app.py``)."""
    import typing

    from lcmap.cli import _app, _options

    flags: set[str] = set()
    for module in (_app, _options):
        for value in vars(module).values():
            if typing.get_origin(value) is typing.Annotated:
                for meta in value.__metadata__:
                    flags.update(getattr(meta, "param_decls", None) or ())
                    if getattr(meta, "default", None) is not None and isinstance(meta.default, str):
                        flags.add(meta.default)
    return {f for f in flags if f.startswith("-")}


def test_every_command_has_at_most_14_options_of_its_own():
    """Options that every command shares come from one place; a command's own stay few."""
    from typer.main import get_command

    shared = _shared_flags()
    assert {"--overwrite", "--device", "--seed", "-p", "--bands"} <= shared
    for name, command in get_command(app).commands.items():
        own = [p.name for p in command.params if not set(p.opts) & shared]
        assert len(own) <= 14, (name, own)
