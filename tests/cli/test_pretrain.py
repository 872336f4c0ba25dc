"""``lcmap pretrain``: an encoder from the user's scenes, in one command."""

from lcmap.cli import app
from lcmap.models import read_header
from tests.cli._cli import one_line_error, runner


def test_pretrain_writes_an_encoder_model_that_segment_applies(make_scene, tmp_path):
    scene = make_scene(width=160, height=128)
    model, out = tmp_path / "enc.lcmap", tmp_path / "map.tif"
    args = [
        "pretrain",
        str(scene),
        "-o",
        str(model),
        "--encoder",
        "unet",
        "-p",
        "crop_size=64",
        "-p",
        "windows=8",
        "-p",
        "batch_size=4",
        "-p",
        "steps=2",
        "-k",
        "3",
        "-p",
        "probe_windows=4",
        "--device",
        "cpu",
        "-p",
        "temperature=0.7",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Saved unet encoder" in r.output
    header = read_header(model)
    assert header.method == "simclr" and header.config["temperature"] == 0.7
    assert header.num_classes == 3
    r = runner.invoke(app, ["segment", str(scene), "--model", str(model), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_a_window_the_encoder_cannot_take_is_one_line(make_scene, tmp_path):
    model = tmp_path / "enc.lcmap"
    args = [
        "pretrain",
        str(make_scene()),
        "-o",
        str(model),
        "--encoder",
        "swin-unet",
        "-p",
        "crop_size=128",
    ]
    assert "224" in one_line_error(runner.invoke(app, args))
    assert not model.exists()


def test_zero_steps_saves_the_encoder_as_it_started_and_says_so(make_scene, tmp_path):
    model = tmp_path / "enc.lcmap"
    args = [
        "pretrain",
        str(make_scene(width=96, height=96)),
        "-o",
        str(model),
        "--encoder",
        "unet",
        "-p",
        "crop_size=64",
        "-p",
        "steps=0",
        "-k",
        "2",
        "-p",
        "probe_windows=2",
        "--device",
        "cpu",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Saved unet encoder (not pre-trained, 2 clusters)" in r.output
    header = read_header(model)
    assert header.config["steps"] == 0 and header.extra["final_loss"] is None
