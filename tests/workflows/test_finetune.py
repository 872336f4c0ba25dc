"""``lcmap.workflows.finetune``: few-shot fine-tuning of a CAS model from labels or polygons."""

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from _cas_data import CLASS_NAMES, miou, train_tiny_cas, write_three_class_scene
from rasterio.features import shapes
from shapely.geometry import shape

from lcmap import api
from lcmap.errors import (
    InvalidModelError,
    InvalidSceneError,
    OutputExistsError,
)
from lcmap.io.legend import named_colours
from lcmap.methods.loading import load_model
from lcmap.models import read_header
from lcmap.workflows.finetune import finetune
from lcmap.workflows.specs import LabelSpec, MethodSpec, PatchSpec, RunSpec, TilingSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cas")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", seed=0)
    truth_b = write_three_class_scene(root / "b.tif", root / "b_labels.tif", seed=1)
    train_tiny_cas(root / "a.tif", root / "cas.lcmap")
    return root, truth_b


def _polygons(raster, path, names=True):
    with rasterio.open(raster) as src:
        data = src.read(1)
        rows = [
            {"landcover": CLASS_NAMES[int(v)] if names else int(v), "geometry": shape(g)}
            for g, v in shapes(data, mask=data != 255, transform=src.transform)
        ]
        gpd.GeoDataFrame(rows, geometry="geometry", crs=src.crs).to_file(path)
    return path


def fast(count: int | None = None, steps: int = 60) -> dict[str, Any]:
    """Quick fine-tuning on the CPU: 32-px patches, a few steps, batches of 4."""
    return {
        "patches": PatchSpec(count, size=32),
        "options": {"steps": steps},
        "run": RunSpec(device="cpu", batch_size=4),
    }


def test_finetune_on_a_few_patches_maps_a_new_scene_well(data, tmp_path):
    root, truth_b = data
    header = finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        LabelSpec([root / "a_labels.tif"], class_names=CLASS_NAMES),
        tmp_path / "tuned.lcmap",
        **fast(4),
    )
    assert header.method == "cas_finetuned" and header.num_classes == 3
    assert header.class_names == CLASS_NAMES and header.extra["patches"] == 4
    assert header.colours[0] == list(named_colours(["water"])[0])
    result = api.segment(root / "b.tif", tmp_path / "b_map.tif", model=tmp_path / "tuned.lcmap")
    with rasterio.open(result.output) as out:
        pred = out.read(1)
        assert "vegetation" in out.tags()["CLASS_NAMES"]
    assert miou(pred, truth_b, 3) > 0.8


def test_polygon_labels_train_like_the_raster(data, tmp_path):
    root, _ = data
    gpkg = _polygons(root / "a_labels.tif", tmp_path / "a.gpkg")
    outs = {}
    for name, labels in [("raster", root / "a_labels.tif"), ("polygons", gpkg)]:
        finetune(
            root / "cas.lcmap",
            [root / "a.tif"],
            LabelSpec([labels], class_names=CLASS_NAMES),
            tmp_path / f"{name}.lcmap",
            **fast(3, steps=5),
        )
        method, header = load_model(tmp_path / f"{name}.lcmap")
        assert header.class_names == CLASS_NAMES
        outs[name] = method.state_dict()
    # Same patches, same pixels, same seed: the same weights.
    for key, value in outs["raster"].items():
        torch.testing.assert_close(value, outs["polygons"][key])


def test_polygon_class_names_default_to_sorted_names(data, tmp_path):
    root, _ = data
    gpkg = _polygons(root / "a_labels.tif", tmp_path / "a.gpkg")
    header = finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        [gpkg],
        tmp_path / "t.lcmap",
        init="random",
        **fast(2, steps=2),
    )
    assert header.class_names == sorted(CLASS_NAMES)
    assert header.config["init"] == "random"


def test_several_scenes_and_the_autoencoder_init(data, tmp_path):
    root, _ = data
    header = finetune(
        root / "cas.lcmap",
        [root / "a.tif", root / "b.tif"],
        [root / "a_labels.tif", root / "b_labels.tif"],
        tmp_path / "t.lcmap",
        init="autoencoder",
        **fast(steps=2),
    )
    assert header.extra["scenes"] == ["a.tif", "b.tif"]
    assert header.extra["patches"] == 2 * 4 * 5  # every 32-px grid patch of both scenes
    assert header.class_names == ["class 0", "class 1", "class 2"]


def test_finetune_errors(data, tmp_path):
    root, _ = data
    args = (root / "cas.lcmap", [root / "a.tif"], [root / "a_labels.tif"])
    (tmp_path / "exists.lcmap").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        finetune(
            *args,
            tmp_path / "exists.lcmap",
            **fast(),
        )
    with pytest.raises(InvalidSceneError, match="only 2 class names"):
        finetune(
            *args[:2],
            LabelSpec(args[2], class_names=["a", "b"]),
            tmp_path / "t.lcmap",
            **fast(),
        )
    api.train(
        [root / "a.tif"],
        tmp_path / "km.lcmap",
        method=MethodSpec("kmeans", classes=3),
        run=RunSpec(device="cpu"),
    )
    with pytest.raises(InvalidModelError, match="'kmeans' model"):
        finetune(
            tmp_path / "km.lcmap",
            *args[1:],
            tmp_path / "t.lcmap",
            **fast(),
        )
    empty = tmp_path / "empty.tif"
    with rasterio.open(root / "a_labels.tif") as src:
        profile = src.profile
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(np.full((1, profile["height"], profile["width"]), 255, np.uint8))
    with pytest.raises(InvalidSceneError, match="No training patch"):
        finetune(
            root / "cas.lcmap",
            [root / "a.tif"],
            [empty],
            tmp_path / "t.lcmap",
            **fast(),
        )
    # A labelled scene without the model's bands: named in one line, not a band-choice hint.
    with pytest.raises(InvalidSceneError, match=r"has 1 band but the 'cas' model reads bands 1, 2"):
        finetune(
            root / "cas.lcmap",
            [empty],
            [root / "a_labels.tif"],
            tmp_path / "t.lcmap",
            **fast(),
        )
    assert not (tmp_path / "t.lcmap").exists()


def test_tuned_model_round_trip(data, tmp_path):
    root, _ = data
    finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        LabelSpec([root / "a_labels.tif"], class_names=CLASS_NAMES),
        tmp_path / "t.lcmap",
        **fast(2, steps=3),
    )
    method, _ = load_model(tmp_path / "t.lcmap")
    assert read_header(tmp_path / "t.lcmap").extra["base_model"] == "cas.lcmap"
    assert method.class_names == CLASS_NAMES and len(method.colours) == 3
    x = torch.rand(1, 3, 40, 56)
    with torch.inference_mode():
        scores = method.predict(x)
    assert scores.shape == (1, 3, 40, 56)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(1, 40, 56))


def test_tuned_and_cas_maps_do_not_depend_on_the_tile_size(data, tmp_path):
    root, _ = data
    finetune(
        root / "cas.lcmap",
        [root / "a.tif"],
        [root / "a_labels.tif"],
        tmp_path / "t.lcmap",
        **fast(4),
    )
    # The halo covers the UNet's receptive field and tiles share its pooling grid: the maps
    # are the same at any tile size, the CAS cluster map and the tuned one alike.
    for model in (tmp_path / "t.lcmap", root / "cas.lcmap"):
        maps = []
        for tile in (48, 512):
            out = tmp_path / f"{model.stem}_{tile}.tif"
            api.segment(
                root / "b.tif",
                out,
                model=model,
                run=RunSpec(device="cpu"),
                tiling=TilingSpec(tile=tile),
            )
            with rasterio.open(out) as src:
                maps.append(src.read(1))
        np.testing.assert_array_equal(maps[0], maps[1])
