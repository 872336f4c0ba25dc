"""STEGO: loss terms, frozen backbone, region recovery, model files, weights resolution.

Fast tests use tiny random ViTs (width 32, 2 blocks) saved to tmp_path; the real DINOv2 test is
marked slow and the bf16 test gpu.
"""

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _tiny_vit import DINO, TINY, hungarian_miou, textured_scene, tiny_vit
from safetensors.torch import save_file

from lcmap.errors import InvalidSceneError, LcmapError, WeightsError
from lcmap.methods import get_method
from lcmap.methods._crf import dense_crf
from lcmap.methods.base import Window
from lcmap.methods.loading import load_model
from lcmap.methods.stego import StegoSegmenter
from lcmap.models import ModelHeader, save_model
from lcmap.nets import vit as _vit
from lcmap.nets.upsample import upsampled_cosine
from lcmap.sampling import ArraySampler
from lcmap.workflows.specs import RunSpec, TilingSpec

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
REAL_WEIGHTS = SHARED / "weights" / "dinov2_vits14_imgfocus.safetensors"
DINOV2 = "vit_small_patch14_dinov2.lvd142m"
DINOV2_REG = "vit_small_patch14_reg4_dinov2.lvd142m"


pytestmark = pytest.mark.usefixtures("one_thread", "vit_cache")


def tiny_stego(weights: Path | None, **kwargs: Any) -> StegoSegmenter:
    options: dict[str, Any] = {
        "backbone": DINO,
        "weights": weights and str(weights),
        "backbone_args": TINY,
        "crop_size": 32,
        "crops": 40,
        "epochs": 5,
        "seed": 0,
    }
    options.update(kwargs)
    return StegoSegmenter.build(kwargs.pop("num_classes", 4), **options)


@pytest.fixture(scope="module")
def fitted(tiny_weights: Path) -> tuple[StegoSegmenter, np.ndarray, np.ndarray]:
    img, truth = textured_scene()
    method = tiny_stego(tiny_weights)
    method.fit(ArraySampler([img], seed=0))
    return method, img, truth


def predict(method: StegoSegmenter, img: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return method.predict(torch.from_numpy(img)[None])


# -- loss ------------------------------------------------------------------------------


def test_each_loss_term_on_constant_features_is_minus_one_minus_shift(tiny_weights: Path) -> None:
    # Identical features and (without dropout) identical codes: F = S = 1 everywhere,
    # centring changes nothing, so each term is exactly -(1 - b).
    shifts = {"self_shift": 0.1, "knn_shift": 0.2, "random_shift": 0.5}
    weights = {"self_weight": 0.5, "knn_weight": 0.25, "random_weight": 2.0}
    method = tiny_stego(tiny_weights, dropout=0.0, **shifts, **weights)
    feats = torch.ones(4, 32, 4, 4)
    loss, parts = method.loss_from_features(feats, feats, torch.Generator().manual_seed(0))
    assert parts["self"] == pytest.approx(-(1 - 0.1), abs=1e-5)
    assert parts["knn"] == pytest.approx(-(1 - 0.2), abs=1e-5)
    assert parts["random"] == pytest.approx(-(1 - 0.5), abs=1e-5)
    expected = 0.5 * parts["self"] + 0.25 * parts["knn"] + 2.0 * parts["random"]
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-5)


def test_gradients_reach_the_head_only(tiny_weights: Path) -> None:
    method = tiny_stego(tiny_weights)
    method.vit.set_in_channels(3)
    images = torch.rand(4, 3, 32, 32)
    feats = method.features(images)
    loss, _ = method.loss_from_features(feats, feats.flip(0), torch.Generator().manual_seed(0))
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in method.backbone.parameters())
    assert all(p.grad is not None for p in method.head.parameters())
    assert sum(float(p.grad.abs().sum()) for p in method.head.parameters() if p.grad is not None)


def test_fit_leaves_backbone_unchanged(tiny_weights: Path) -> None:
    method = tiny_stego(tiny_weights, crops=10, epochs=1)
    before = {k: v.clone() for k, v in method.backbone.state_dict().items()}
    method.fit(ArraySampler([textured_scene()[0]], seed=0))
    after = method.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k in after)
    assert not method.backbone.training


# -- fitting and prediction ------------------------------------------------------------


def test_trained_head_and_probe_recover_textured_regions(fitted: Any) -> None:
    method, img, truth = fitted
    scores = predict(method, img)
    assert scores.shape == (1, 4, 96, 96) and scores.dtype == torch.float32
    assert float(scores.max()) <= 1.0 + 1e-5
    assert hungarian_miou(truth, scores.argmax(1)[0].numpy(), 4) >= 0.9


def test_same_seed_gives_same_labels(fitted: Any, tiny_weights: Path) -> None:
    method, img, _ = fitted
    again = tiny_stego(tiny_weights)
    again.fit(ArraySampler([img], seed=0))
    assert torch.equal(predict(method, img).argmax(1), predict(again, img).argmax(1))


def test_unset_seed_is_drawn_from_torch_and_recorded(tiny_weights: Path) -> None:
    seeds = []
    for _ in range(2):
        torch.manual_seed(5)
        method = tiny_stego(tiny_weights, seed=None, crops=10, steps=2)
        method.fit(ArraySampler([textured_scene()[0]], seed=0))
        seeds.append(method.config()["seed"])
    assert isinstance(seeds[0], int) and seeds[0] == seeds[1]


def test_predict_pads_sizes_that_are_not_patch_multiples(fitted: Any) -> None:
    method, img, _ = fitted
    assert predict(method, img[:, :45, :61]).shape == (1, 4, 45, 61)


def test_progress_reaches_total(tiny_weights: Path) -> None:
    calls: list[tuple[int, int]] = []
    method = tiny_stego(tiny_weights, crops=10, steps=3)
    method.fit(ArraySampler([textured_scene()[0]], seed=0), lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] == 10 + 3 + 1
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_training_loss_is_shown_beside_the_progress_bar(tiny_weights: Path) -> None:
    class Progress:  # the CLI's callback shape: (done, total) plus status(text)
        def __init__(self) -> None:
            self.texts: list[str] = []

        def __call__(self, done: int, total: int) -> None:
            pass

        def status(self, text: str) -> None:
            self.texts.append(text)

    progress = Progress()
    tiny_stego(tiny_weights, crops=10, steps=12).fit(
        ArraySampler([textured_scene()[0]], seed=0), progress
    )
    assert len(progress.texts) == 3  # steps 1, 11 and the last
    assert all(t.startswith("loss ") and math.isfinite(float(t[5:])) for t in progress.texts)


def test_crf_returns_probabilities_and_smooths_an_outlier() -> None:
    image = torch.full((1, 3, 16, 16), 0.5)
    logits = torch.zeros(1, 2, 16, 16)
    logits[:, 0] = 1.0
    logits[:, 0, 8, 8], logits[:, 1, 8, 8] = 0.0, 1.0  # one pixel disagrees
    q = dense_crf(image, logits, iterations=5)
    assert torch.allclose(q.sum(1), torch.ones(1, 16, 16), atol=1e-5)
    assert int(q.argmax(1)[0, 8, 8]) == 0


def test_crf_option_runs_in_predict(fitted: Any) -> None:
    method, img, truth = fitted
    method.crf = True
    try:
        scores = predict(method, img)
    finally:
        method.crf = False
    assert scores.shape == (1, 4, 96, 96) and float(scores.min()) >= 0.0
    assert hungarian_miou(truth, scores.argmax(1)[0].numpy(), 4) >= 0.9


# -- bands -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 4, 6])
def test_adapted_patch_embedding_keeps_grey_images_unchanged(channels: int) -> None:
    model = tiny_vit()
    grey = torch.rand(1, 1, 16, 16)
    before = model.patch_embed.proj(grey.expand(-1, 3, -1, -1))
    _vit.adapt_input_channels(model, channels)
    after = model.patch_embed.proj(grey.expand(-1, channels, -1, -1))
    assert model.patch_embed.proj.in_channels == channels
    assert torch.allclose(before, after, atol=1e-5)


def test_four_band_scene_fits_and_rejects_three_band_tiles(tiny_weights: Path) -> None:
    img, truth = textured_scene(bands=4)
    method = tiny_stego(tiny_weights)
    method.fit(ArraySampler([img], seed=0))
    assert method.in_channels == 4 and method.config()["in_channels"] == 4
    assert hungarian_miou(truth, predict(method, img).argmax(1)[0].numpy(), 4) >= 0.9
    with pytest.raises(InvalidSceneError, match="3 bands but this stego model expects 4"):
        predict(method, img[:3])


# -- options ---------------------------------------------------------------------------


def test_options_given_as_strings_are_coerced(tiny_weights: Path) -> None:
    method = get_method(
        "stego",
        num_classes="3",
        backbone=DINO,
        weights=str(tiny_weights),
        backbone_args=TINY,
        epochs="2",
        lr="1e-3",
        crf="true",
        feature_layer="1",
    )
    assert isinstance(method, StegoSegmenter)
    assert (method.num_classes, method.epochs, method.lr, method.crf) == (3, 2, 1e-3, True)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epochs": "many"}, "epochs='many' is not a whole number"),
        ({"batch_size": 1}, "batch_size=1 must be at least 2"),
        ({"feature_layer": 5}, "feature_layer=5 is out of range"),
        ({"crf": "maybe"}, "crf='maybe' must be true or false"),
        ({"shift": 0.1}, "has no option 'shift' \\(did you mean knn_shift\\?\\)"),
        ({"backbone": "resnet50"}, "Unknown backbone 'resnet50'"),
    ],
)
def test_bad_options_raise_clear_errors(
    tiny_weights: Path, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_stego(tiny_weights, **options)


def test_feature_layer_takes_an_intermediate_block(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_vit, "_NATIVE_BF16", False)  # exact fp32, as the reference runs
    method = tiny_stego(tiny_weights, feature_layer=1)
    method.vit.set_in_channels(3)
    assert len(method.backbone.blocks) == 1  # later blocks are pruned
    x = torch.rand(2, 3, 32, 32)
    full = tiny_vit()
    mean, std = torch.tensor(full.pretrained_cfg["mean"]), torch.tensor(full.pretrained_cfg["std"])
    normed = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    expected = full.forward_intermediates(
        normed, indices=[0], norm=True, intermediates_only=True, output_fmt="NCHW"
    )[0]
    assert torch.allclose(method.features(x), expected, atol=1e-5)


# -- model files -----------------------------------------------------------------------


def make_header(method: StegoSegmenter) -> ModelHeader:
    k, c = method.num_classes, method.in_channels or 3
    return ModelHeader(
        method="stego",
        config=method.config(),
        num_classes=k,
        in_channels=c,
        bands=list(range(1, c + 1)),
        norm_low=[0.0] * c,
        norm_high=[1.0] * c,
        class_names=[f"class {i}" for i in range(k)],
        colours=[[i, i, i] for i in range(k)],
        extra=method.header(),
    )


def test_save_load_round_trip_gives_identical_predictions(fitted: Any, tmp_path: Path) -> None:
    method, img, _ = fitted
    path = tmp_path / "stego.lcmap"
    save_model(path, method, make_header(method))
    loaded, header = load_model(path)
    assert isinstance(loaded, StegoSegmenter)
    assert header.extra["weights_sha256"] == _vit.file_sha256(Path(method.config()["weights"]))
    assert header.extra["backbone"] == DINO
    assert set(method.state_dict()) == {"centroids"} | {
        f"head.{k}" for k in method.head.state_dict()
    }  # no backbone tensors in the model file
    assert torch.equal(predict(method, img), predict(loaded, img))


def test_crf_can_be_switched_on_when_a_saved_model_is_applied(fitted: Any, tmp_path: Path) -> None:
    method, img, _ = fitted
    path = tmp_path / "stego.lcmap"
    save_model(path, method, make_header(method))
    refined, header = load_model(path, {"crf": True, "crf_iterations": 3})
    assert (refined.crf, refined.crf_iterations) == (True, 3)
    assert header.config["crf"] is True
    plain, _ = load_model(path)
    assert not plain.crf
    scores = predict(refined, img)
    assert float(scores.min()) >= 0 and torch.allclose(scores.sum(1), torch.ones(1), atol=1e-4)
    assert not torch.equal(scores, predict(plain, img))


def test_options_fixed_by_training_are_refused_with_a_saved_model(
    fitted: Any, tmp_path: Path
) -> None:
    method, _, _ = fitted
    path = tmp_path / "stego.lcmap"
    save_model(path, method, make_header(method))
    with pytest.raises(LcmapError, match=r"feature_layer is fixed .*only crf, crf_iterations"):
        load_model(path, {"feature_layer": 1, "crf": True})
    with pytest.raises(LcmapError, match="crf_iterations"):
        load_model(path, {"crf_iterations": 0})


# -- linear probe (labels given) ---------------------------------------------------------

PERMUTED = np.array([2, 0, 3, 1])  # class ids that are not the quadrant order


@pytest.fixture(scope="module")
def probed(tiny_weights: Path) -> tuple[StegoSegmenter, np.ndarray, np.ndarray]:
    img, truth = textured_scene()
    labels = PERMUTED[truth]
    sparse = np.full_like(labels, 255)
    sparse[::4, ::4] = labels[::4, ::4]  # a few labelled pixels a patch is enough
    sparse[:, :8] = labels[:, :8]
    method = tiny_stego(tiny_weights)
    method.fit(ArraySampler([img], labels=[sparse], seed=0))
    return method, img, labels


def test_linear_probe_maps_the_label_ids_without_matching(probed: Any) -> None:
    method, img, labels = probed
    assert method.linear is not None
    scores = predict(method, img)
    torch.testing.assert_close(scores.sum(1), torch.ones(1, 96, 96))
    assert (scores.argmax(1)[0].numpy() == labels).mean() >= 0.9


def test_patch_label_is_the_majority_of_its_labelled_pixels(tiny_weights: Path) -> None:
    method = tiny_stego(tiny_weights)  # patch 8, K = 4
    labels = torch.full((1, 8, 24), 255)
    labels[0, 0, 0] = 3  # patch 0: one labelled pixel among 63 unlabelled ones
    labels[0, :, 8:16] = 1  # patch 1: 40 pixels of class 1, 24 of class 2
    labels[0, 5:, 8:16] = 2
    # patch 2: nothing labelled
    assert method._patch_labels(labels).tolist() == [[[3, 1, 255]]]


def test_linear_probe_is_saved_and_loaded(probed: Any, tmp_path: Path) -> None:
    method, img, _ = probed
    path = tmp_path / "probed.lcmap"
    save_model(path, method, make_header(method))
    loaded, _ = load_model(path)
    assert isinstance(loaded, StegoSegmenter) and loaded.linear is not None
    assert torch.equal(predict(method, img), predict(loaded, img))


@pytest.mark.parametrize(
    "labels,message", [(7, "not a class id below 4"), (255, "no training crop has labelled")]
)
def test_linear_probe_rejects_unusable_labels(
    tiny_weights: Path, labels: int, message: str
) -> None:
    img, _ = textured_scene(size=48)
    method = tiny_stego(tiny_weights, crops=10, epochs=1)
    with pytest.raises(ValueError, match=message):
        method.fit(ArraySampler([img], labels=[np.full((48, 48), labels)], seed=0))


def test_loading_finds_moved_weights_in_the_cache(
    fitted: Any, tmp_path: Path, vit_cache: Path
) -> None:
    method, img, _ = fitted
    config = dict(method.config(), weights=str(tmp_path / "gone" / "tiny_dino_s8.safetensors"))
    shutil.copy(method.config()["weights"], vit_cache / "tiny_dino_s8.safetensors")
    again = StegoSegmenter.build(**config)
    again.load_state_dict(method.state_dict())
    assert again.resolved.source == "cache"
    assert torch.equal(predict(method, img), predict(again, img))


# -- weights resolution ----------------------------------------------------------------


def features_of(method: StegoSegmenter, x: torch.Tensor) -> torch.Tensor:
    method.vit.set_in_channels(3)
    return method.features(x)


def test_official_dino_pth_and_teacher_checkpoint_load(tiny_weights: Path, tmp_path: Path) -> None:
    state = tiny_vit().state_dict()
    plain = tmp_path / "dino_deitsmall8_pretrain.pth"
    torch.save(state, plain)
    teacher = {f"module.backbone.{k}": v for k, v in state.items()}
    teacher["module.head.mlp.0.weight"] = torch.zeros(4, 32)
    wrapped = tmp_path / "checkpoint.pth"
    torch.save({"teacher": teacher, "epoch": 10}, wrapped)
    x = torch.rand(1, 3, 32, 32)
    reference = features_of(tiny_stego(tiny_weights), x)
    for path in (plain, wrapped):
        assert torch.allclose(features_of(tiny_stego(path), x), reference)


@pytest.mark.parametrize("name", [DINOV2, DINOV2_REG])
def test_official_dinov2_pth_is_converted_to_timm_names(name: str, tmp_path: Path) -> None:
    model = tiny_vit(name, img_size=56)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    official = dict(state, mask_token=torch.zeros(1, 32))
    if "reg_token" in state:  # official layout: cls position inside pos_embed, no reg pos
        official["register_tokens"] = official.pop("reg_token")
        official["pos_embed"] = torch.cat([torch.zeros(1, 1, 32), state["pos_embed"]], 1)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official, path)
    safetensors_path = tmp_path / "timm.safetensors"
    save_file(state, str(safetensors_path))
    args = dict(TINY, img_size=56)
    a = tiny_stego(path, backbone=name, backbone_args=args, crop_size=28)
    b = tiny_stego(safetensors_path, backbone=name, backbone_args=args, crop_size=28)
    assert a.patch_size == 14 and a.window == Window(28, 14) and a.halo == 14
    x = torch.rand(1, 3, 28, 42)
    assert torch.allclose(features_of(a, x), features_of(b, x), atol=1e-6)


def test_weights_found_in_cache_directory(
    tiny_weights: Path, tmp_path: Path, vit_cache: Path
) -> None:
    shutil.copy(tiny_weights, vit_cache / f"{DINO}.safetensors")
    method = tiny_stego(None)
    assert method.resolved.source == "cache"
    assert method.header()["weights_sha256"] == _vit.file_sha256(tiny_weights)
    (vit_cache / f"{DINO}.safetensors").unlink()
    torch.save(tiny_vit().state_dict(), vit_cache / "dino_deitsmall8_pretrain.pth")
    assert tiny_stego(None).resolved.path.name.endswith("pretrain.pth")


def test_offline_without_weights_fails_at_once_naming_the_file(vit_cache: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"dino_deitsmall8_pretrain\.pth") as info:
        StegoSegmenter.build(4, backbone_args=TINY)
    assert str(vit_cache) in str(info.value) and "weights=PATH" in str(info.value)
    assert time.perf_counter() - start < 5


def test_offline_check_honours_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCMAP_OFFLINE", "1")
    assert _vit.is_online() is False


def test_missing_explicit_weights_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        tiny_stego(tmp_path / "nope.safetensors")


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    wrong = tmp_path / "s16.safetensors"
    save_file(tiny_vit("vit_small_patch16_224.dino").state_dict(), str(wrong))
    with pytest.raises(WeightsError, match="pass backbone= with the matching name"):
        tiny_stego(wrong)
    deeper = tmp_path / "deeper.safetensors"
    save_file(tiny_vit(depth=3).state_dict(), str(deeper))
    with pytest.raises(WeightsError, match="unexpected"):
        tiny_stego(deeper)


# -- real backbone and GPU -------------------------------------------------------------


@pytest.mark.slow
def test_real_dinov2_backbone_separates_textured_regions() -> None:
    if not REAL_WEIGHTS.is_file():
        pytest.skip(f"{REAL_WEIGHTS} is absent")
    torch.set_num_threads(2)
    img, truth = textured_scene(size=224)
    # No head steps: checks weights, block-8 features, upsampling and the cosine probe. (With
    # STEGO's Potsdam shifts, training on these DINOv2 features pulls the regions together.)
    method = StegoSegmenter.build(
        4,
        backbone="vit_small_patch14_dinov2",
        weights=str(REAL_WEIGHTS),
        feature_layer=8,
        crops=30,
        steps=0,
    )
    assert method.header()["weights_sha256"].startswith("91114ff0898c")
    method.fit(ArraySampler([img], seed=0))
    assert hungarian_miou(truth, predict(method, img).argmax(1)[0].numpy(), 4) >= 0.9
    method.steps = 10
    method.fit(ArraySampler([img], seed=0))
    assert predict(method, img).shape == (1, 4, 224, 224)


@pytest.mark.gpu
def test_bf16_autocast_matches_fp32(fitted: Any) -> None:
    method, img, _ = fitted
    method.to(torch.device("cuda"))
    try:
        x = torch.from_numpy(np.tile(img, (1, 3, 3)))[None].cuda()
        with torch.inference_mode():
            fp32 = method.predict(x)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                bf16 = method.predict(x)
        assert bf16.dtype == torch.float32
        assert float((fp32 - bf16).abs().max()) < 0.1
        assert float((fp32.argmax(1) == bf16.argmax(1)).float().mean()) > 0.97
    finally:
        method.to(torch.device("cpu"))


@pytest.mark.network
def test_default_backbone_downloads_from_the_hub_once(
    vit_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _vit.is_online():
        pytest.skip("the weights hub is not reachable")
    method = StegoSegmenter.build(4, crops=2, steps=0)
    assert method.resolved.source == "hub"
    assert method.resolved.path.is_relative_to(vit_cache)
    monkeypatch.setenv("LCMAP_OFFLINE", "1")  # the second time it comes from the cache
    again = StegoSegmenter.build(4, crops=2, steps=0)
    assert again.resolved.path == method.resolved.path
    assert again.header()["weights_sha256"] == method.header()["weights_sha256"]


# -- tiling: the map must not depend on --tile -------------------------------------------

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "naip_2020_rgbn.tif"


@pytest.fixture(scope="module")
def naip_crop(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> tuple[Path, Path]:
    """A 320 x 320 px crop of the real NAIP sample (bands 1-3) and a tiny stego model of it.

    The tiny model's windows are 32 px at stride 16: 10 x 10 windows, as a 224 px ViT-S window
    is to a 2240 px scene.
    """
    from _tiny_vit import tiny_stego_on_naip

    return tiny_stego_on_naip(tmp_path_factory.mktemp("naip_crop"), tiny_weights, 60, 3)


def map_with_tile(crop: Path, model: Path, tile: int, out: Path) -> np.ndarray:
    import rasterio

    from lcmap import api

    api.segment(crop, out, model=model, run=RunSpec(device="cpu"), tiling=TilingSpec(tile=tile))
    with rasterio.open(out) as src:
        return src.read(1)


def test_saved_model_maps_agree_across_tile_sizes(naip_crop: Any, tmp_path: Path) -> None:
    crop, model = naip_crop
    maps = {t: map_with_tile(crop, model, t, tmp_path / f"{t}.tif") for t in (48, 96, 224)}
    for a, b in [(48, 96), (96, 224), (48, 224)]:
        assert (maps[a] == maps[b]).mean() >= 0.97, (a, b)
    assert len(np.unique(maps[48])) >= 3  # a map, not one class


def test_no_seams_on_tile_cores_window_borders_or_scene_edges(
    naip_crop: Any, tmp_path: Path
) -> None:
    """Label changes are no more frequent on tile and window borders than elsewhere.

    A ViT has one feature per patch (8 px here), so labels change most often on patch borders
    wherever the tiles and windows are; tile and window borders (multiples of 16 px) are patch
    borders, so they are compared with the patch borders that are neither (8 px off them).
    """
    from _helpers import change_rates

    crop, model = naip_crop
    labels = map_with_tile(crop, model, 48, tmp_path / "m.tif")
    n = labels.shape[0]
    patch_borders, _ = change_rates(labels, np.arange(8, n, 16), np.arange(8, n, 16))
    # Tile cores start every 48 px; windows (32 px, stride 16) start and end every 16 px.
    for step in (48, 16):
        lines = np.arange(step, n, step)
        on, _ = change_rates(labels, lines, lines)
        assert on <= 1.2 * patch_borders, (step, on, patch_borders)
    # At the scene's edges windows reach into the mirrored halo: the first and last rows and
    # columns change no more often than the rest.
    edge = np.r_[1:5, n - 4 : n]
    on, off = change_rates(labels, edge, edge)
    assert on <= 1.2 * off, ("edge", on, off)


def _safetensors_bytes(header: Any, data: bytes = b"") -> bytes:
    import json
    import struct

    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage that is not a safetensors file at all",
        (2**63).to_bytes(8, "little") + b"{}",
        (99_000_000).to_bytes(8, "little") + b"{}",
        _safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"x"),
        _safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [10**18], "data_offsets": [0, 4]}}, b"abcd"
        ),
        _safetensors_bytes([1, 2, 3]),
        __import__("pickle").dumps({"patch_embed.proj.weight": [1.0]}),
    ],
    ids=[
        "empty",
        "garbage",
        "len-2^63",
        "len-99MB",
        "past-end",
        "1e18-elements",
        "list",
        "pickle",
    ],
)
def test_malformed_safetensors_weights_are_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="Cannot read weights file"):
        _vit.read_state_dict(path)


def test_malformed_weights_are_one_line_on_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lcmap.cli import app

    path = tmp_path / "weights.safetensors"
    path.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    r = CliRunner().invoke(
        app,
        [
            "segment",
            str(SAMPLE),
            "-o",
            str(tmp_path / "m.tif"),
            "-m",
            "stego",
            "--weights",
            str(path),
            "-q",
        ],
    )
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Cannot read weights" in r.output


@pytest.mark.parametrize(
    ("patches", "pixels"),
    [
        ((16, 16), (224, 224)),
        ((5, 6), (70, 84)),
        ((3, 7), (33, 47)),
        ((1, 1), (14, 14)),
        ((4, 2), (8, 50)),
    ],
)
def test_upsampled_cosine_is_the_literal_upsample_normalise_and_dot(patches, pixels) -> None:
    """The cheap form gives STEGO's scores: codes upsampled to pixels, each pixel normalised,
    dotted with the centroids; at window size, odd sizes, one patch, and a zero code."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(sum(patches) + sum(pixels))
    codes = torch.randn(2, 7, *patches, generator=gen)
    codes[0, :, 0, 0] = 0  # a zero code: F.normalize's eps, not a division by zero
    vectors = F.normalize(torch.randn(4, 7, generator=gen), dim=1)
    up = F.interpolate(codes, size=pixels, mode="bilinear", align_corners=False)
    literal = torch.einsum("bchw,kc->bkhw", F.normalize(up, dim=1), vectors)
    cheap = upsampled_cosine(codes, vectors, pixels)
    assert cheap.shape == literal.shape
    torch.testing.assert_close(cheap, literal, atol=1e-5, rtol=0)
