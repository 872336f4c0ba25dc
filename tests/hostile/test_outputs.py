"""Hostile outputs: every output of every command, sidecars included, passes one guard.

Nothing replaces an input, a device, a FIFO, a folder, a system path or an existing file or link
unasked; lossy creation options never reach a label map; a refused run leaves nothing behind.
"""

import json
import os
import stat

import numpy as np
import pytest
import rasterio

from lcmap.errors import OutputExistsError, OutputPathError
from lcmap.io import staging
from tests.cli._cli import one_line_error, run


@pytest.fixture
def mapped(make_scene, tmp_path):
    """A scene and its 3-class map (the map doubles as a truth raster)."""
    scene = make_scene()
    result = run("segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "-q")
    assert result.exit_code == 0, result.output
    return scene, tmp_path / "m.tif"


def _char_device(path):
    """A character device (/dev/null's numbers) at ``path``, or skip where mknod is refused."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return path


@pytest.mark.parametrize("flag", ["--json", "--plot"])
@pytest.mark.parametrize("victim", ["truth", "pred"])
def test_evaluate_never_writes_over_its_inputs(mapped, tmp_path, flag, victim):
    _, pred = mapped
    truth = tmp_path / "truth.tif"
    truth.write_bytes(pred.read_bytes())
    target = truth if victim == "truth" else pred
    before = target.read_bytes()
    out = one_line_error(run("evaluate", pred, truth, flag, target, "--overwrite", "-q"))
    assert "is the input" in out or "must end" in out
    assert target.read_bytes() == before


@pytest.mark.parametrize("flag,name", [("--json", "r.json"), ("--plot", "r.png")])
def test_evaluate_never_replaces_a_fifo_or_a_device(mapped, tmp_path, flag, name):
    _, pred = mapped
    fifo = tmp_path / f"fifo-{name}"
    os.mkfifo(fifo)
    one_line_error(run("evaluate", pred, pred, flag, fifo, "--overwrite", "-q"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    device = _char_device(tmp_path / f"dev-{name}")
    one_line_error(run("evaluate", pred, pred, flag, device, "--overwrite", "-q"))
    assert stat.S_ISCHR(os.lstat(device).st_mode)


@pytest.mark.parametrize("sidecar", ["o.tif.aux.xml", "o.qml", "o.lcmap.json"])
def test_a_sidecar_never_replaces_a_device(make_scene, tmp_path, sidecar):
    scene = make_scene()
    aux = _char_device(tmp_path / sidecar)
    out = one_line_error(
        run("segment", scene, "-o", tmp_path / "o.tif", "-k", "3", "--overwrite", "-q")
    )
    assert "not a regular file" in out
    assert stat.S_ISCHR(os.lstat(aux).st_mode) and not (tmp_path / "o.tif").exists()


def test_an_existing_sidecar_needs_overwrite(make_scene, tmp_path):
    scene = make_scene()
    (tmp_path / "o.tif.aux.xml").write_text("mine")
    one_line_error(run("segment", scene, "-o", tmp_path / "o.tif", "-k", "3", "-q"))
    assert (tmp_path / "o.tif.aux.xml").read_text() == "mine"


@pytest.mark.parametrize("path", ["/dev/stdout", "/dev/null", "/proc/self/fd/1", "/dev/shm/x"])
def test_system_paths_are_never_outputs(path):
    with pytest.raises(OutputPathError, match=r"system file|not a regular"):
        staging.check_output(path, overwrite=True)


def test_publish_refuses_a_special_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "m.json"
    staging.check_output(target, overwrite=False)
    os.mkfifo(target)  # after the guard, before the rename
    tmp = staging.temp_path(target)
    with pytest.raises(OutputPathError, match="not a regular file"):
        staging.publish(tmp, target)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)


def test_a_dangling_link_is_replaced_only_with_overwrite(make_scene, tmp_path):
    scene = make_scene()
    link = tmp_path / "o.tif"
    link.symlink_to(tmp_path / "missing.tif")
    out = one_line_error(run("segment", scene, "-o", link, "-k", "3", "-q"))
    assert "exists" in out and link.is_symlink()
    assert run("segment", scene, "-o", link, "-k", "3", "--overwrite", "-q").exit_code == 0
    assert link.is_file() and not link.is_symlink() and not (tmp_path / "missing.tif").exists()


def test_a_link_loop_is_refused_before_any_work(tmp_path):
    loop = tmp_path / "o.tif"
    loop.symlink_to(loop)
    with pytest.raises(OutputPathError, match="link that cannot be followed"):
        staging.check_output(loop, overwrite=True)


def test_a_folder_named_like_a_map_is_not_an_output_folder(make_scene, tmp_path):
    scene = make_scene()
    folder = tmp_path / "o.tif"
    folder.mkdir()
    out = one_line_error(run("segment", scene, "-o", folder, "-k", "3", "--overwrite", "-q"))
    assert "is a directory" in out and list(folder.iterdir()) == []


def test_a_refused_run_over_many_scenes_leaves_no_folder(make_scene, tmp_path):
    a, b = make_scene("a.tif"), make_scene("b.tif", seed=1)
    outdir = tmp_path / "out"
    one_line_error(run("segment", a, b, "-o", f"{outdir}/", "-k", "3", "--co", "LEVEL=99", "-q"))
    assert not outdir.exists()


def test_a_name_that_is_not_utf8_is_one_line(tmp_path):
    name = os.fsdecode(b"m\xff.tif")
    with pytest.raises(OutputPathError, match="not valid UTF-8"):
        staging.check_output(tmp_path / name, overwrite=False)


def test_the_guard_names_why_it_refuses(tmp_path):
    existing = tmp_path / "m.tif"
    existing.write_bytes(b"x")
    with pytest.raises(OutputExistsError):
        staging.check_output(existing, overwrite=False)
    with pytest.raises(OutputPathError, match="is the input"):
        staging.check_output(existing, overwrite=True, inputs=[existing])
    assert staging.check_output(existing, overwrite=True) == existing


@pytest.mark.parametrize(
    "option",
    [
        "COMPRESS=LERC --co MAX_Z_ERROR=2",
        "OVERVIEW_RESAMPLING=AVERAGE",
        "OVERVIEW_RESAMPLING=CUBIC",
        "RESAMPLING=BILINEAR",
        "LEVEL=99",
        "COMPRESS=LZW --co LEVEL=3",
        "NUM_THREADS=100000",
        "OVERVIEW_COUNT=1000",
        "PREDICTOR=FLOATING_POINT",
    ],
)
def test_creation_options_that_would_change_labels_or_fail_late_are_one_line(
    make_scene, tmp_path, option
):
    scene = make_scene()
    args = [part for piece in option.split(" --co ") for part in ("--co", piece)]
    one_line_error(run("segment", scene, "-o", tmp_path / "o.tif", "-k", "3", *args, "-q"))
    assert [p.name for p in tmp_path.iterdir()] == ["scene.tif"]


def test_lossless_lerc_keeps_every_label(mapped, make_scene, tmp_path):
    scene, reference = mapped
    out = tmp_path / "lerc.tif"
    result = run(
        "segment",
        scene,
        "-o",
        out,
        "-k",
        "3",
        "--co",
        "COMPRESS=LERC_ZSTD",
        "--co",
        "MAX_Z_ERROR=0",
        "-q",
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as a, rasterio.open(reference) as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_the_overview_tag_names_the_resampling_used(make_scene, tmp_path):
    scene = make_scene(width=1400, height=1300)
    out = tmp_path / "o.tif"
    assert run("segment", scene, "-o", out, "-k", "3", "-q").exit_code == 0
    with rasterio.open(out) as src:
        assert src.overviews(1), "the map has overviews"
        assert src.tags()["OVR_RESAMPLING_ALG"] == "MODE"
        full, low = src.read(1), src.read(1, out_shape=(src.height // 2, src.width // 2))
        assert set(np.unique(low)) <= set(np.unique(full))
    near = tmp_path / "near.tif"
    result = run(
        "segment", scene, "-o", near, "-k", "3", "--co", "OVERVIEW_RESAMPLING=NEAREST", "-q"
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(near) as src:
        assert src.tags()["OVR_RESAMPLING_ALG"] == "NEAREST"


def test_evaluate_json_to_stdout(mapped):
    _, pred = mapped
    result = run("evaluate", pred, pred, "--json", "-", "-q")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == 1.0


def test_evaluate_plot_format_follows_its_suffix(mapped, tmp_path):
    _, pred = mapped
    one_line_error(run("evaluate", pred, pred, "--plot", tmp_path / "r.xyz", "-q"))
    assert not (tmp_path / "r.xyz").exists()
    assert run("evaluate", pred, pred, "--plot", tmp_path / "r.svg", "-q").exit_code == 0
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
