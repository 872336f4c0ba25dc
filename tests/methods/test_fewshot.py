"""``lcmap.methods.fewshot``: few-shot learning from any model that provides an encoder.

A cas model and a (tiny) stego model go through the same protocol: what each offers as
``--init``, window embeddings and clusters for ``suggest-labels``, and a tuned model that
``finetune`` trains and ``segment`` maps with real class names.
"""

import numpy as np
import pytest
import rasterio
import torch
from _cas_data import CLASS_NAMES, miou, train_tiny_cas, write_three_class_scene
from _tiny_vit import DINO, TINY, tiny_vit
from safetensors.torch import save_file

from lcmap import api
from lcmap.errors import InvalidModelError, InvalidOptionError
from lcmap.methods import fewshot_methods
from lcmap.methods.fewshot import FewShotEncoder, check_init, load_encoder
from lcmap.models import read_header
from lcmap.workflows.finetune import finetune
from lcmap.workflows.specs import LabelSpec, MethodSpec, PatchSpec, RunSpec
from lcmap.workflows.suggest import suggest_labels

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoders")
    write_three_class_scene(root / "a.tif", root / "a_labels.tif", seed=0)
    truth_b = write_three_class_scene(root / "b.tif", root / "b_labels.tif", seed=1)
    train_tiny_cas(root / "a.tif", root / "cas.lcmap")
    weights = root / "tiny_vit.safetensors"
    save_file(tiny_vit().state_dict(), str(weights))
    options = {
        "backbone": DINO,
        "weights": str(weights),
        "backbone_args": TINY,
        "crop_size": 32,
        "crops": 40,
        "epochs": 3,
        "seed": 0,
    }
    api.train(
        [root / "a.tif"],
        root / "stego.lcmap",
        method=MethodSpec("stego", classes=3, options=options),
        run=RunSpec(device="cpu"),
    )
    api.train(
        [root / "a.tif"],
        root / "km.lcmap",
        method=MethodSpec("kmeans", classes=3),
        run=RunSpec(device="cpu"),
    )
    return root, truth_b


def test_the_methods_that_provide_an_encoder_are_found_from_their_classes():
    assert {"cas", "stego"} <= set(fewshot_methods())
    assert "kmeans" not in fewshot_methods()


def test_each_model_offers_its_own_inits_and_the_first_is_the_default(data):
    root, _ = data
    cas, _ = load_encoder(root / "cas.lcmap")
    stego, _ = load_encoder(root / "stego.lcmap")
    assert isinstance(cas, FewShotEncoder) and isinstance(stego, FewShotEncoder)
    assert list(cas.fewshot_inits()) == ["cas", "autoencoder", "random"]
    assert list(stego.fewshot_inits()) == ["stego"]
    assert check_init(cas, None) == "cas" and check_init(stego, None) == "stego"
    with pytest.raises(InvalidOptionError, match=r"offers: stego \("):
        check_init(stego, "autoencoder")


def test_a_model_without_an_encoder_is_refused_naming_those_with_one(data):
    root, _ = data
    with pytest.raises(InvalidModelError, match=r"'kmeans' model.*cas.*stego"):
        load_encoder(root / "km.lcmap")


def test_window_embeddings_and_their_clusters(data):
    root, _ = data
    for name in ("cas.lcmap", "stego.lcmap"):
        encoder, _ = load_encoder(root / name)
        x = torch.rand(5, 3, 32, 32)
        with torch.no_grad():
            z = encoder.embed_windows(x)
            found = encoder.assign_windows(z)
        assert z.shape[0] == 5 and z.ndim == 2
        assert found.cluster.shape == (5,) and int(found.cluster.max()) < encoder.num_classes
        assert bool((found.distance >= -1e-6).all())
        assert bool(((found.confidence > 0) & (found.confidence <= 1 + 1e-6)).all())


def test_stego_is_fine_tuned_as_a_linear_probe_that_maps_a_new_scene(data, tmp_path):
    root, truth_b = data
    header = finetune(
        root / "stego.lcmap",
        [root / "a.tif"],
        LabelSpec([root / "a_labels.tif"], class_names=CLASS_NAMES),
        tmp_path / "tuned.lcmap",
        patches=PatchSpec(count=8, size=32),
        options={"steps": 200},
        run=RunSpec(device="cpu"),
    )
    assert header.method == "stego" and header.num_classes == 3
    assert header.class_names == CLASS_NAMES and header.extra["init"] == "stego"
    assert header.config["probe_steps"] == 200
    result = api.segment(root / "b.tif", tmp_path / "b.tif", model=tmp_path / "tuned.lcmap")
    with rasterio.open(result.output) as out:
        pred = out.read(1)
        assert "vegetation" in out.tags()["CLASS_NAMES"]
    # Real class ids, no Hungarian matching: the probe learnt the labels' meaning.
    assert miou(truth_b, pred, 3) >= 0.6
    assert read_header(tmp_path / "tuned.lcmap").extra["base_model"] == "stego.lcmap"


def test_an_option_the_tuned_network_does_not_take_is_refused(data, tmp_path):
    root, _ = data
    with pytest.raises(InvalidOptionError, match="does not take crop_size"):
        finetune(
            root / "stego.lcmap",
            [root / "a.tif"],
            [root / "a_labels.tif"],
            tmp_path / "t.lcmap",
            patches=PatchSpec(size=32),
            options={"crop_size": 16},
            run=RunSpec(device="cpu"),
        )
    assert not (tmp_path / "t.lcmap").exists()


def test_suggest_labels_from_a_stego_model(data, tmp_path):
    root, _ = data
    frame = suggest_labels(
        [root / "a.tif"],
        root / "stego.lcmap",
        tmp_path / "s.gpkg",
        patches=PatchSpec(count=6, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 6 and frame["order"].tolist() == list(range(1, 7))
    assert frame["cluster"].nunique() >= 2
    assert np.all(frame["distance"].to_numpy() >= 0)
