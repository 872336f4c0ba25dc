"""The single-scene deep-clustering method (Saha et al.): model, losses, fitting, tiles, files."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import read
from scipy.optimize import linear_sum_assignment

from lcmap import api
from lcmap.methods import get_method
from lcmap.methods.loading import load_model
from lcmap.methods.single_scene import (
    SingleSceneNet,
    SingleSceneSegmenter,
    clustering_loss,
    contrastive_loss,
    shuffled_partners,
)
from lcmap.models import ModelHeader, save_model
from lcmap.sampling import ArraySampler
from lcmap.workflows.specs import MethodSpec, RunSpec, TilingSpec

# Small and quick: the tests check behaviour, not the paper's capacity.
TINY = {"features": 8, "iterations": 2, "epochs": 1, "crop_size": 24, "batch_size": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


def two_textured_regions(height=64, width=128, seed=0):
    """Left: a smooth dark-green cover; right: a bright purple one with a coarse texture."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(2), width // 2)[None].repeat(height, 0)
    spectra = np.array([[0.1, 0.3, 0.2], [0.5, 0.2, 0.7]], dtype=np.float32)
    texture = np.array([0.01, 0.03], dtype=np.float32)
    noise = rng.normal(0, 1, (3, height, width)).astype(np.float32)
    image = spectra[truth].transpose(2, 0, 1) + noise * texture[truth]
    return np.clip(image, 0, 1).astype(np.float32), truth


def hungarian_miou(pred, truth):
    k = int(max(pred.max(), truth.max())) + 1
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (truth.ravel(), pred.ravel()), 1)
    rows, cols = linear_sum_assignment(cm, maximize=True)
    inter = cm[rows, cols]
    union = cm.sum(1)[rows] + cm.sum(0)[cols] - inter
    present = cm.sum(1)[rows] > 0
    return float((inter[present] / union[present]).mean())


def fitted(in_channels=3, seed=0, shape=(40, 52), **options):
    rng = np.random.default_rng(seed)
    image = rng.random((in_channels, *shape), dtype=np.float32)
    method = SingleSceneSegmenter.build(4, seed=seed, **{**TINY, **options})
    method.fit(ArraySampler([image], seed=seed))
    return method


def predict_padded(method, image, halo):
    """Scores of a (C, H, W) array read with ``halo`` pixels of reflected context, cropped."""
    x = F.pad(torch.as_tensor(image)[None], (halo,) * 4, mode="reflect")
    with torch.inference_mode():
        scores = method.predict(x)
    return scores[0, :, halo : halo + image.shape[1], halo : halo + image.shape[2]]


def predict_tiled(method, image, tile, halo, context):
    """Crop-centre stitching: tiles of ``tile`` px read with ``halo`` px from a padded scene.

    ``context`` pixels of reflection around the scene stand for the engine's boundless reads.
    """
    _, h, w = image.shape
    padded = F.pad(torch.as_tensor(image)[None], (context,) * 4, mode="reflect")
    out = torch.zeros(method.num_classes, h, w)
    with torch.inference_mode():
        for r in range(0, h, tile):
            for c in range(0, w, tile):
                th, tw = min(tile, h - r), min(tile, w - c)
                r0, c0 = r + context - halo, c + context - halo
                window = padded[:, :, r0 : r0 + th + 2 * halo, c0 : c0 + tw + 2 * halo]
                scores = method.predict(window)[0]
                out[:, r : r + th, c : c + tw] = scores[:, halo : halo + th, halo : halo + tw]
    return out


# --------------------------------------------------------------------------- building


def test_defaults_are_the_papers():
    method = get_method("single_scene")
    cfg = method.config()
    assert cfg["num_classes"] == 8 and cfg["layers"] == 5 and cfg["features"] == 64
    assert (cfg["epochs"], cfg["iterations"], cfg["crop_size"]) == (2, 50, 224)
    assert (cfg["batch_size"], cfg["lr"], cfg["momentum"]) == (8, 1e-3, 0.9)
    assert method.halo == 5 and method.in_channels is None
    assert method.window is None and method.info.size_multiple == 1
    assert method.info.needs_fit


def test_builder_converts_command_line_strings():
    cfg = SingleSceneSegmenter.build(5, iterations="20", lr="0.01", layers=3.0).config()
    assert cfg["iterations"] == 20 and cfg["lr"] == 0.01 and cfg["layers"] == 3
    assert SingleSceneSegmenter.build(5, layers=3).halo == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backbone": "vit"}, "no option 'backbone'"),
        ({"iterations": "many"}, "not a whole number"),
        ({"layers": 2.5}, "must be a whole number"),
        ({"num_classes": 1}, "num_classes=1 must be from 2"),
        ({"epochs": 0}, "epochs=0"),
        ({"lr": 0}, "lr=0.0 must be above 0"),
    ],
)
def test_builder_rejects_bad_options_clearly(options, message):
    with pytest.raises(ValueError, match=message):
        SingleSceneSegmenter.build(**options)


def test_network_is_table_1():
    method = SingleSceneSegmenter.build(8, in_channels=4)
    net = method.net
    assert isinstance(net, SingleSceneNet) and method.in_channels == 4
    assert len(net.convs) == 5
    for i, conv in enumerate(net.convs):
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
        assert conv.out_channels == 64 and conv.in_channels == (4 if i == 0 else 64)
    assert net.head.kernel_size == (1, 1) and net.head.out_channels == 8
    # ReLU then batch normalisation after each convolution (the paper's order).
    x = torch.rand(2, 4, 9, 9)
    net.train()
    expected = x
    for conv, norm in zip(net.convs, net.norms, strict=True):
        expected = norm(F.relu(conv(expected)))
    torch.testing.assert_close(net.features(x), expected)


def test_channel_attention_is_cbam_while_training_and_frozen_at_inference():
    net = SingleSceneSegmenter.build(3, in_channels=2, features=8, reduction=4).net
    att = net.attention
    x = torch.randn(2, 8, 5, 6)
    att.train()
    mlp = att.mlp
    weights = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    torch.testing.assert_close(att(x), x * weights[:, :, None, None])
    att.eval()
    att.scale.copy_(torch.linspace(0.1, 0.8, 8))
    torch.testing.assert_close(att(x), x * att.scale[None, :, None, None])
    # Frozen: a pixel's output no longer depends on the rest of its tile.
    torch.testing.assert_close(att(x[:, :, :2, :3]), att(x)[:, :, :2, :3])


# --------------------------------------------------------------------------- losses


def test_clustering_loss_is_cross_entropy_to_own_argmax():
    # Two pixels: scores (2, 0) -> label 0, and (0, 1) -> label 1.
    scores = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])
    valid = torch.tensor([[[True, True]]])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert clustering_loss(scores, valid).item() == pytest.approx(expected)
    valid = torch.tensor([[[True, False]]])  # nodata pixels take no part
    assert clustering_loss(scores, valid).item() == pytest.approx(math.log(1 + math.exp(-2)))


def test_clustering_loss_gradient_does_not_flow_through_the_labels():
    scores = torch.tensor([[[[2.0]], [[0.0]]]], requires_grad=True)
    clustering_loss(scores, torch.ones(1, 1, 1, dtype=torch.bool)).backward()
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    torch.testing.assert_close(scores.grad.flatten(), p - torch.tensor([1.0, 0.0]))


def test_contrastive_loss_is_mean_exp_of_negative_l1():
    # Patch 0: pixels y=(1, 0) and (0, 0); patch 1: (0, 2) and (0, 0.5).
    scores = torch.tensor(
        [[[[1.0, 0.0]], [[0.0, 0.0]]], [[[0.0, 0.0]], [[2.0, 0.5]]]]
    )  # (B=2, K=2, H=1, W=2)
    valid = torch.ones(2, 1, 2, dtype=torch.bool)
    partners = torch.tensor([1, 0])
    # |y - y'|_1: pixel 0 -> 1 + 2 = 3, pixel 1 -> 0.5; both patches see the same distances.
    expected = (math.exp(-3) + math.exp(-0.5)) / 2
    assert contrastive_loss(scores, valid, partners).item() == pytest.approx(expected)
    valid[1, 0, 1] = False  # a pair counts only where both pixels hold data
    assert contrastive_loss(scores, valid, partners).item() == pytest.approx(math.exp(-3))


@pytest.mark.parametrize("batch", [2, 3, 5, 8])
def test_shuffled_partners_never_pair_a_patch_with_itself(batch):
    generator = torch.Generator().manual_seed(batch)
    for _ in range(50):
        partners = shuffled_partners(batch, generator)
        assert sorted(partners.tolist()) == list(range(batch))
        assert (partners != torch.arange(batch)).all()


# --------------------------------------------------------------------------- fitting


def test_fit_recovers_two_textured_regions():
    image, truth = two_textured_regions()
    method = SingleSceneSegmenter.build(
        2, seed=0, features=16, iterations=100, epochs=2, crop_size=48, batch_size=4
    )
    method.fit(ArraySampler([image], seed=0))
    labels = predict_padded(method, image, method.halo).argmax(0).numpy()
    assert hungarian_miou(labels, truth) >= 0.9
    assert method.clusters_used == 2


def test_fit_is_reproducible_with_a_seed():
    a, b, c = fitted(seed=3), fitted(seed=3), fitted(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_seeded_fit_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    fitted(seed=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_fit_reports_progress_up_to_its_total():
    calls = []
    image = np.random.default_rng(0).random((3, 30, 30), dtype=np.float32)
    method = SingleSceneSegmenter.build(3, seed=0, **TINY)
    method.fit(ArraySampler([image], seed=0), progress=lambda d, t: calls.append((d, t)))
    done, totals = zip(*calls, strict=True)
    assert list(done) == list(range(1, len(calls) + 1))
    assert set(totals) == {len(calls)}
    # ceil(900 / 24**2) = 2 patches -> 1 batch x 2 iterations, then calibration batches.
    assert len(calls) > 2


def test_fit_ignores_nodata_pixels():
    image = np.random.default_rng(0).random((3, 40, 40), dtype=np.float32)
    valid = np.ones((40, 40), dtype=bool)
    valid[:, :12] = False
    image[:, ~valid] = 0
    method = SingleSceneSegmenter.build(3, seed=0, **TINY)
    method.fit(ArraySampler([image], valid=[valid], seed=0))
    assert all(torch.isfinite(v.float()).all() for v in method.state_dict().values())


def test_clusters_in_use_are_counted_and_collapse_is_reported(caplog):
    method = fitted()
    assert method.clusters_used == 4 and method.header() == {"clusters_used": 4}
    with caplog.at_level("WARNING", logger="lcmap.methods.single_scene"):
        method._report_clusters(torch.tensor([5000, 4, 0, 3000]))  # 4 is under 0.1%
    assert method.clusters_used == 2
    assert "collapsed to 2 of 4 clusters" in caplog.text


def test_fit_rejects_a_band_count_it_was_not_built_for():
    method = SingleSceneSegmenter.build(3, in_channels=4, **TINY)
    with pytest.raises(ValueError, match="built for 4 bands but the scene has 3"):
        method.fit(ArraySampler([np.zeros((3, 30, 30), dtype=np.float32)]))


def test_predict_needs_a_fitted_model():
    with pytest.raises(RuntimeError, match="fit"):
        SingleSceneSegmenter.build(3).predict(torch.zeros(1, 3, 8, 8))
    with pytest.raises(RuntimeError, match="fitted"):
        SingleSceneSegmenter.build(3, in_channels=3).predict(torch.zeros(1, 3, 8, 8))


# --------------------------------------------------------------------------- tiles


def test_tiled_prediction_with_halo_equals_whole_scene():
    method = fitted()
    image = np.random.default_rng(1).random((3, 45, 61), dtype=np.float32)
    whole = predict_padded(method, image, method.halo)
    for tile in (7, 16, 32):
        tiled = predict_tiled(method, image, tile, method.halo, context=method.halo)
        torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)
        assert torch.equal(tiled.argmax(0), whole.argmax(0))


def test_halo_of_layers_is_needed():
    method = fitted()
    image = np.random.default_rng(1).random((3, 45, 61), dtype=np.float32)
    whole = predict_padded(method, image, method.halo)
    short = predict_tiled(method, image, 16, method.halo - 1, context=method.halo)
    assert not torch.allclose(short, whole, atol=1e-4)


def test_scores_do_not_depend_on_the_rest_of_the_batch():
    method = fitted()
    batch = torch.rand(3, 3, 20, 20)
    with torch.inference_mode():
        together = method.predict(batch)
        alone = torch.cat([method.predict(batch[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_segment_map_does_not_depend_on_tile_size(make_scene, tmp_path):
    scene = make_scene(width=131, height=97)
    model = tmp_path / "single.lcmap"
    api.train(
        [scene],
        model,
        method=MethodSpec("single_scene", classes=4, options=TINY),
        run=RunSpec(device="cpu", seed=0),
    )
    maps = []
    for tile in (32, 64, 100_000):
        out = tmp_path / f"map{tile}.tif"
        api.segment(
            scene, out, model=model, run=RunSpec(device="cpu"), tiling=TilingSpec(tile=tile)
        )
        maps.append(read(out)[0])
    np.testing.assert_array_equal(maps[0], maps[2])
    np.testing.assert_array_equal(maps[1], maps[2])


# --------------------------------------------------------------------------- model files


def test_model_file_round_trip(tmp_path):
    method = fitted(in_channels=4, layers=3)
    path = tmp_path / "m.lcmap"
    header = ModelHeader(
        method="single_scene",
        config=method.config(),
        num_classes=4,
        in_channels=4,
        bands=[1, 2, 3, 4],
        norm_low=[0.0] * 4,
        norm_high=[1.0] * 4,
        class_names=[f"c{i}" for i in range(4)],
        colours=[[i, i, i] for i in range(4)],
    )
    save_model(path, method, header)
    loaded, header = load_model(path)
    assert isinstance(loaded, SingleSceneSegmenter) and header.config["in_channels"] == 4
    assert loaded.halo == 3
    batch = torch.rand(2, 4, 17, 19)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.predict(batch), method.predict(batch))


def test_scores_shape_dtype_and_device(test_device):
    method = fitted().to(test_device)
    with torch.inference_mode():
        scores = method.predict(torch.rand(1, 3, 12, 12, device=test_device))
    assert scores.shape == (1, 4, 12, 12) and scores.dtype == torch.float32
    assert scores.device.type == test_device.type
