"""``lcmap.io.preview``: the scene and the map side by side, read from the overviews."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from lcmap import api
from lcmap.errors import OutputExistsError, OutputPathError
from lcmap.io.preview import _read_map, _read_scene, write_preview
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


def sentinel2_stack(path):
    """A 12-band Sentinel-2 L2A stack in band order, without descriptions: red (band 4) bright
    on the left, green (band 3) bright at the top, aerosol (band 1) bright on the right."""
    h = w = 64
    data = np.full((12, h, w), 1000, np.uint16)
    data[3, :, : w // 2] = 3000
    data[2, : h // 2] = 3000
    data[0, :, w // 2 :] = 3000
    data += np.random.default_rng(0).integers(0, 50, data.shape, dtype=np.uint16)
    profile = {"driver": "GTiff", "width": w, "height": h, "count": 12, "dtype": "uint16"}
    crs = {"crs": "EPSG:32633", "transform": from_origin(300000, 5000000, 10, 10)}
    with rasterio.open(path, "w", **profile, **crs) as dst:
        dst.write(data)
    return path


def test_a_sentinel2_stack_is_pictured_in_true_colour(tmp_path):
    picture = _read_scene(sentinel2_stack(tmp_path / "s2.tif"), None, 64)
    red, green = picture[..., 0], picture[..., 1]
    # Red from band 4 (left), not band 1 (right); green from band 3 (top), not band 2.
    assert red[:, :32].mean() > 0.8 and red[:, 32:].mean() < 0.2
    assert green[:32].mean() > 0.8 and green[32:].mean() < 0.2
    chosen = _read_scene(tmp_path / "s2.tif", [1, 2, 3], 64)  # -b still decides
    assert chosen[:, 32:, 0].mean() > 0.8


def test_segment_previews_the_true_colour_whatever_b_maps(make_scene, tmp_path, monkeypatch):
    import lcmap.io.preview as preview

    shown = []
    real = preview.write_preview

    def spy(*args, **kwargs):
        shown.append(kwargs["bands"])
        return real(*args, **kwargs)

    monkeypatch.setattr(preview, "write_preview", spy)
    s2 = sentinel2_stack(tmp_path / "s2.tif")
    out = tmp_path / "m.tif"
    r = run("segment", s2, "-o", out, "-k", "3", "-b", "2,3,4,8", "--preview", tmp_path / "m.png")
    assert r.exit_code == 0, r.output
    other = make_scene()  # nothing says which of its bands are which: -b's first three
    r = run(
        *("segment", other, "-o", tmp_path / "n.tif", "-k", "3", "-b", "3,2,1"),
        *("--preview", tmp_path / "n.png", "-q"),
    )
    assert r.exit_code == 0, r.output
    assert shown == [None, [3, 2, 1]]  # None: the stack's true colour, bands 4, 3, 2
