"""``lcmap.io.preview``: the scene and the map side by side, read from the overviews."""

import pytest

from lcmap import api
from lcmap.errors import OutputExistsError, OutputPathError
from lcmap.io.preview import _read_map, write_preview
from lcmap.workflows.specs import MethodSpec
from tests.cli._cli import one_line_error, run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def mapped(make_scene, tmp_path):
    scene = make_scene(width=1400, height=1100)
    api.segment(scene, tmp_path / "m.tif", method=MethodSpec("kmeans", classes=4))
    return scene, tmp_path / "m.tif"


def test_the_map_is_read_small_with_its_names_and_colours(mapped):
    _, label_map = mapped
    labels, valid, colours, names = _read_map(label_map, 256)
    assert max(labels.shape) == 256 and valid.all()
    assert sorted(names) == [0, 1, 2, 3] and names[0] == "class 0"
    assert all(len(c) == 3 for c in colours.values())


def test_a_preview_is_a_png_written_whole_or_not_at_all(mapped, tmp_path):
    scene, label_map = mapped
    out = write_preview(label_map, tmp_path / "p.png", scene=scene)
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(OutputPathError, match=r"must end \.png"):
        write_preview(label_map, tmp_path / "p.jpg")
    with pytest.raises(OutputExistsError):
        write_preview(label_map, tmp_path / "p.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.lcmap.json",
        "m.qml",
        "m.tif",
        "m.tif.aux.xml",
        "p.png",
        "scene.tif",
    ]


def test_segment_writes_the_preview_after_the_map(make_scene, tmp_path):
    scene = make_scene()
    r = run(
        "segment", scene, "-o", tmp_path / "m.tif", "-k", "3", "--preview", tmp_path / "m.png", "-q"
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m.png").read_bytes().startswith(PNG)
    out = one_line_error(
        run("segment", scene, "-o", tmp_path / "n.tif", "-k", "3", "--preview", scene, "-q")
    )
    assert ".png" in out and not (tmp_path / "n.tif").exists()
    other = make_scene("b.tif", seed=2)
    r = run("segment", scene, other, "-o", f"{tmp_path}/many/", "--preview", tmp_path / "x.png")
    assert r.exit_code == 2 and not (tmp_path / "many").exists()
