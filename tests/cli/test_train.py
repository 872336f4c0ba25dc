"""``lcmap train``: fit a method across scenes and save its model."""

from lcmap.cli import app
from lcmap.models import read_header
from tests.cli._cli import one_line_error, runner


def test_train_saves_a_model_that_maps_every_scene_with_one_meaning(make_scene, tmp_path):
    a, b = make_scene(name="a.tif"), make_scene(name="b.tif", seed=5)
    model = tmp_path / "km.lcmap"
    args = ["train", str(a), str(b), "-m", "kmeans", "-k", "4", "-o", str(model), "--seed", "3"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    header = read_header(model)
    assert header.method == "kmeans" and header.num_classes == 4
    assert len(header.bands) == 4


def test_an_option_the_method_does_not_declare_is_refused(make_scene, tmp_path):
    model = tmp_path / "km.lcmap"
    args = ["train", str(make_scene()), "-m", "kmeans", "-o", str(model), "-p", "smoth=2"]
    out = one_line_error(runner.invoke(app, args), code=1)
    assert "smooth" in out  # did you mean
    assert not model.exists()
