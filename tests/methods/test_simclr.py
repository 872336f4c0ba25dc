"""``simclr``: contrastive pre-training on a real scene, maps from it, suggestions from its
probe, and every encoder through a model file."""

import warnings

import numpy as np
import pytest
import rasterio
import torch
from _cas_data import SIMCLR_FAST as FAST
from _cas_data import write_three_class_scene
from _tiny_vit import NAIP_SAMPLE

from lcmap import api
from lcmap.errors import InvalidOptionError, TrainingCollapseWarning
from lcmap.methods import get_method
from lcmap.methods.loading import load_model
from lcmap.methods.simclr import SimclrSegmenter
from lcmap.models import read_header, save_model
from lcmap.nets.catalogue import ENCODERS, FIXED_SIZE
from lcmap.sampling import ArraySampler
from lcmap.workflows.finetune import finetune
from lcmap.workflows.specs import MethodSpec, PatchSpec, RunSpec, TilingSpec
from lcmap.workflows.suggest import suggest_labels

pytestmark = pytest.mark.usefixtures("one_thread")


def _naip(size: int = 256) -> np.ndarray:
    with rasterio.open(NAIP_SAMPLE) as src:
        data = src.read([1, 2, 3], window=((200, 200 + size), (300, 300 + size)))
    return data.astype(np.float32) / 255.0


def _pretrained_on_naip(**extra) -> tuple[SimclrSegmenter, float, float]:
    """15 Adam steps on the NAIP sample; the loss of the same views before and after."""
    windows = torch.from_numpy(ArraySampler([_naip()], seed=0).sample(16, 64).image.numpy())
    options = {**FAST, "steps": 15, "optimizer": "adam", "windows": 16, "batch_size": 16}
    seg = get_method("simclr", num_classes=4, **options, **extra)

    def loss() -> float:
        for module in (seg.net, seg.projection):
            if module is not None:  # as in training: batch statistics
                module.train()
        with torch.no_grad():
            value, _ = seg.contrastive_loss(windows, torch.Generator().manual_seed(9))
        return float(value)

    seg._build(3)
    before = loss()
    seg.fit(ArraySampler([_naip()], seed=0))
    return seg, before, loss()


def test_pretraining_lowers_the_contrastive_loss_on_a_real_scene():
    seg, before, after = _pretrained_on_naip()
    assert after < before - 0.1, (before, after)
    assert seg.final_loss is not None and seg.centroids.shape == (4, seg.net.embed_dim())


def test_the_model_file_records_the_encoder_augmentations_and_loss(encoder_model):
    _, _, header = encoder_model
    assert header.method == "simclr"
    assert header.extra["network"]["config"]["encoder"] == "resnet18-unet"
    assert "random_resized_crop" in header.extra["augmentations"]
    assert header.extra["objective"] == "simclr" and header.extra["final_loss"] > 0
    assert header.config["crop_size"] == 64 and header.config["window_stride"] == 32


def test_an_encoder_maps_the_same_at_any_tile_size(encoder_model, tmp_path):
    root, _, _ = encoder_model
    maps = []
    for tile in (32, 96):
        out = tmp_path / f"m{tile}.tif"
        api.segment(root / "b.tif", out, model=root / "enc.lcmap", tiling=TilingSpec(tile=tile))
        with rasterio.open(out) as src:
            maps.append(src.read(1))
    assert np.array_equal(maps[0], maps[1])
    assert len(np.unique(maps[0])) >= 2


def test_suggest_labels_from_an_encoder(encoder_model, tmp_path):
    root, _, _ = encoder_model
    frame = suggest_labels(
        [root / "a.tif"],
        root / "enc.lcmap",
        None,
        patches=PatchSpec(count=4, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 4 and frame["cluster"].max() < 3  # the probe's 3 clusters
    frame = suggest_labels(
        [root / "a.tif"],
        root / "enc.lcmap",
        None,
        clusters="budget",
        patches=PatchSpec(count=4, size=32),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 4 and frame["cluster"].nunique() == 4


def test_a_pretraining_whose_loss_ends_at_chance_says_so():
    # A flat scene: every view the same, the NT-Xent at exactly ln(2 x batch - 1).
    flat = np.full((3, 96, 96), 0.5, dtype=np.float32)
    options = {
        **FAST,
        "encoder": "unet",
        "crop_size": 32,
        "windows": 8,
        "batch_size": 4,
        "steps": 50,
        "optimizer": "adam",
        "probe_windows": 2,
    }
    with pytest.warns(TrainingCollapseWarning, match="chance level"):
        get_method("simclr", num_classes=2, **options).fit(ArraySampler([flat], seed=0))
    with warnings.catch_warnings():  # a real scene learns, and nothing is said
        warnings.simplefilter("error", TrainingCollapseWarning)
        get_method("simclr", num_classes=2, **options).fit(ArraySampler([_naip(96)], seed=0))


def test_a_swin_encoder_embeds_patches_of_any_size():
    # Swin takes 224 px windows only; a patch of another size is embedded through them.
    seg = get_method("simclr", num_classes=3, encoder="swin-unet", in_channels=2, crop_size=224)
    seg.net.eval()
    x = torch.rand(2, 2, 448, 448)
    with torch.no_grad():
        whole = seg.embed_windows(x)
        quarters = [
            seg.net.embed(x[..., r : r + 224, c : c + 224]).mean(dim=(2, 3))
            for r in (0, 224)
            for c in (0, 224)
        ]
        small = seg.embed_windows(x[..., :128, :100])
        odd = seg.embed_windows(x[..., :300, :230])
    # four windows tile 448 px exactly: the patch's embedding is their cells' mean
    expected = torch.nn.functional.normalize(torch.stack(quarters).mean(0), dim=1)
    assert torch.allclose(whole, expected, atol=1e-5)
    for e in (small, odd):
        assert e.shape == whole.shape and torch.allclose(e.norm(dim=1), torch.ones(2))


def test_suggest_labels_with_a_swin_encoder_and_its_tuned_model(tmp_path):
    write_three_class_scene(tmp_path / "a.tif", tmp_path / "a_labels.tif", 240, 256, seed=0)
    options = {
        "encoder": "swin-unet",
        "windows": 4,
        "batch_size": 2,
        "steps": 1,
        "probe_windows": 2,
    }
    api.train(
        [tmp_path / "a.tif"],
        tmp_path / "enc.lcmap",
        method=MethodSpec("simclr", classes=3, options=options),
        run=RunSpec(device="cpu"),
    )
    finetune(
        tmp_path / "enc.lcmap",
        [tmp_path / "a.tif"],
        [tmp_path / "a_labels.tif"],
        tmp_path / "t.lcmap",
        patches=PatchSpec(count=2, size=128),
        options={"steps": 1},
        run=RunSpec(device="cpu"),
    )
    # patches smaller than Swin's window; 2 patches over 3 clusters: the tuned model's
    # uncertainty decides which clusters get one
    frame = suggest_labels(
        [tmp_path / "a.tif"],
        tmp_path / "enc.lcmap",
        None,
        clusters=3,
        tuned=tmp_path / "t.lcmap",
        patches=PatchSpec(count=2, size=112),
        run=RunSpec(device="cpu"),
    )
    assert len(frame) == 2 and set(frame["size"]) == {112}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_every_encoder_round_trips_through_a_model_file(encoder, tmp_path):
    from lcmap.io.scene import Normalisation
    from lcmap.workflows.fitting import model_header

    crop = FIXED_SIZE.get(encoder, 64)
    for name, options in (
        ("simclr", {}),
        ("encoder_finetuned", {"head": "decoder"}),
        ("encoder_finetuned", {"head": "linear"}),
        ("encoder_finetuned", {"head": "linear-bands"}),
        ("encoder_finetuned", {"head": "linear-indices"}),
        ("encoder_finetuned", {"head": "linear-texture"}),
    ):
        seg = get_method(
            name, num_classes=3, encoder=encoder, in_channels=2, crop_size=crop, **options
        )
        if isinstance(seg, SimclrSegmenter):
            seg.centroids = torch.nn.functional.normalize(torch.randn(3, seg.net.embed_dim()))
        norm = Normalisation(low=(0.0, 0.0), high=(1.0, 1.0))
        path = tmp_path / f"{name}{options.get('head')}.lcmap"
        save_model(path, seg, model_header(seg, [1, 2], norm, []))
        back, _ = load_model(path)
        assert read_header(path).extra["network"]["config"]["encoder"] == encoder
        head = options.get("head")
        assert back.net.linear == (head not in ("decoder", None))
        assert back.net.with_bands == (head in ("linear-bands", "linear-indices", "linear-texture"))
        assert back.net.with_indices == (head in ("linear-indices", "linear-texture"))
        assert back.net.with_texture == (head == "linear-texture")
        x = torch.rand(1, 2, crop, crop)
        with torch.no_grad():
            assert torch.allclose(seg.predict(x), back.predict(x), atol=1e-5)


def test_pretraining_on_pairs_of_sensors_keeps_an_encoder_for_each(tmp_path):
    from _cas_data import ORIGIN, three_class_truth
    from rasterio.transform import from_origin

    truth = three_class_truth(128, 160, seed=3)
    optical = (np.array([[40, 80, 160], [170, 150, 60], [90, 200, 90]])[truth]).transpose(2, 0, 1)
    radar = np.stack([truth * 3.0 - 15.0, truth * -2.0 - 8.0])[:, ::2, ::2]  # 2 bands, 4 m
    a, b = tmp_path / "s2.tif", tmp_path / "s1.tif"
    for path, data, pixel in (
        (a, optical.astype(np.uint8), 2.0),
        (b, radar.astype(np.float32), 4.0),
    ):
        profile = {
            "driver": "GTiff",
            "width": data.shape[2],
            "height": data.shape[1],
            "count": data.shape[0],
            "dtype": data.dtype,
            "crs": "EPSG:32618",
            "transform": from_origin(*ORIGIN, pixel, pixel),
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
    model = tmp_path / "pair.lcmap"
    header = api.train(
        [a],
        model,
        partners=[b],
        method=MethodSpec("simclr", classes=3, options={**FAST, "encoder": "unet"}),
        run=RunSpec(device="cpu"),
    )
    assert header.in_channels == 3 and header.config["pair_channels"] == 2
    assert header.extra["pairs"]["partners"] == ["s1.tif"] and header.extra["pairs"]["bands"] == [
        1,
        2,
    ]
    seg, _ = load_model(model)
    assert seg.pair_net is not None and seg.pair_net.encoder.stem[0].in_channels == 2
    result = api.segment(a, tmp_path / "map.tif", model=model)
    assert result.width == 160 and sum(result.class_pixels) == 128 * 160
    with pytest.raises(InvalidOptionError, match="does not learn from pairs"):
        api.train(
            [a], tmp_path / "km.lcmap", partners=[b], method="kmeans", run=RunSpec(device="cpu")
        )


def test_the_same_seed_gives_the_same_encoder(tmp_path):
    scene = tmp_path / "a.tif"
    write_three_class_scene(scene, tmp_path / "a_labels.tif", seed=4)
    states = []
    for i in range(2):
        model = tmp_path / f"m{i}.lcmap"
        api.train(
            [scene],
            model,
            method=MethodSpec("simclr", classes=3, options={**FAST, "encoder": "unet"}),
            run=RunSpec(device="cpu", seed=5),
        )
        states.append(load_model(model)[0].state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_pretraining_runs_at_a_constant_rate(monkeypatch):
    seen: list[float] = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    options = {**FAST, "steps": 10, "optimizer": "adam", "lr": 0.01, "windows": 8}
    get_method("simclr", num_classes=2, **options).fit(ArraySampler([_naip(128)], seed=0))
    assert seen == [0.01] * 10


def test_zero_steps_keeps_the_weights_and_fits_only_the_probe(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(5)
    rgb = timm.create_model("resnet18", pretrained=False, num_classes=0)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    seg = get_method("simclr", num_classes=3, **{**FAST, "steps": 0, "weights": str(path)})
    seg.fit(ArraySampler([_naip(128)], seed=0))
    state = seg.net.encoder.body.state_dict()
    assert all(torch.equal(state[k], v) for k, v in rgb.state_dict().items() if k in state)
    assert seg.final_loss is None and seg.header()["final_loss"] is None
    assert seg.centroids.shape == (3, seg.net.embed_dim())
    assert seg.predict(torch.from_numpy(_naip(64))[None]).shape == (1, 3, 64, 64)


def test_a_dinov2_encoder_without_weights_finds_them_or_says_which_file(tmp_path, monkeypatch):
    from lcmap.errors import WeightsError

    monkeypatch.setenv("LCMAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LCMAP_OFFLINE", "1")
    options = {**FAST, "encoder": "dinov2-vits14", "crop_size": 224, "steps": 0}
    seg = get_method("simclr", num_classes=2, **options)
    with pytest.raises(WeightsError, match="vit_small_patch14_dinov2"):
        seg.fit(ArraySampler([_naip(224)], seed=0))
    import timm
    from safetensors.torch import save_file

    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    (tmp_path / "cache").mkdir()
    cached = tmp_path / "cache" / "vit_small_patch14_dinov2.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(cached))
    seg = get_method("simclr", num_classes=2, **{**options, "probe_windows": 2})
    seg.fit(ArraySampler([_naip(224)], seed=0))
    assert seg.cfg.weights == str(cached)
    block = seg.net.encoder.body.blocks[3].mlp.fc1.weight
    assert torch.equal(block, vit.state_dict()["blocks.3.mlp.fc1.weight"])


def test_a_dinov2_encoder_of_several_blocks_keeps_them_through_the_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    from lcmap.io.scene import Normalisation
    from lcmap.workflows.fitting import model_header

    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    seg = get_method(
        "simclr",
        num_classes=2,
        **{
            **FAST,
            "encoder": "dinov2-vits14",
            "crop_size": 224,
            "steps": 0,
            "probe_windows": 2,
            "weights": str(path),
            "vit_blocks": 3,
        },
    )
    seg.fit(ArraySampler([_naip(224)], seed=0))
    assert seg.net.reductions == [14] * 3
    assert seg.network()["config"]["vit_blocks"] == 3
    model = tmp_path / "enc.lcmap"
    save_model(model, seg, model_header(seg, [1, 2, 3], Normalisation((0.0,) * 3, (1.0,) * 3), []))
    path.unlink()  # the model file holds the ViT: the start file is not needed to load it
    back, _ = load_model(model)
    assert back.cfg.vit_blocks == 3 and back.net.reductions == [14] * 3
    tuned = back.tuned(3, "simclr")
    assert tuned.net.reductions == [14] * 3 and len(tuned.net.channels) == 3
    assert torch.equal(
        tuned.net.encoder.body.blocks[5].attn.qkv.weight,
        vit.state_dict()["blocks.5.attn.qkv.weight"],
    )
    assert back.tuned(3, "simclr", vit_blocks=1).net.reductions == [14]


def test_tuning_may_choose_its_own_window():
    seg = get_method("simclr", num_classes=2, in_channels=3, **FAST)
    assert seg.tuned(3, "simclr").cfg.crop_size == FAST["crop_size"]
    tuned = seg.tuned(3, "simclr", crop_size=96)
    assert (tuned.cfg.crop_size, tuned.cfg.window_stride) == (96, 48)
