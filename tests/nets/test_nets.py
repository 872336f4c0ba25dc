"""The network factory: networks by name, N-band timm encoders, records that rebuild them."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lcmap.errors import InvalidOptionError
from lcmap.nets import build_net, list_nets
from lcmap.nets.timm_encoder import TimmEncoder
from lcmap.nets.unet import UNet, dihedral, dihedral_mean


def test_every_network_is_built_by_name() -> None:
    assert list_nets() == ["encoder_unet", "single_scene_cnn", "timm_encoder", "unet", "vit"]
    unet = build_net("unet", in_channels=5, width=4, depth=2, embed_dim=8, out_channels=3)
    assert isinstance(unet, UNet)
    z, out = unet(torch.rand(1, 5, 32, 32))
    assert z.shape == (1, 8, 8, 8) and out.shape == (1, 3, 32, 32)
    cnn = build_net(
        "single_scene_cnn", in_channels=4, layers=2, features=8, reduction=4, num_classes=5
    )
    assert cnn(torch.rand(2, 4, 16, 16)).shape == (2, 5, 16, 16)
    vit = build_net(
        "vit",
        backbone="vit_small_patch8_224.dino",
        backbone_args={"embed_dim": 32, "depth": 1, "num_heads": 2},
    )
    assert vit.patch_embed.patch_size == (8, 8)
    with pytest.raises(InvalidOptionError, match="Unknown network 'resnet'"):
        build_net("resnet")


@pytest.mark.parametrize(
    "model,extra,reductions",
    [
        ("resnet18", {}, [2, 4, 8, 16, 32]),
        ("swin_tiny_patch4_window7_224", {"img_size": 224}, [4, 8, 16, 32]),
    ],
)
def test_timm_encoders_take_any_band_count(model: str, extra: dict, reductions: list) -> None:
    enc = build_net("timm_encoder", model=model, in_channels=6, **extra)
    assert enc.reductions == reductions
    size = extra.get("img_size", 64)
    feats = enc(torch.rand(1, 6, size, size))
    assert [f.shape[1] for f in feats] == enc.out_channels
    assert [size // f.shape[-1] for f in feats] == reductions


def test_rgb_weights_are_adapted_to_the_band_count(tmp_path: Path) -> None:
    rgb = TimmEncoder("resnet18", in_channels=3)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.body.state_dict().items()}, str(path))
    four = TimmEncoder("resnet18", in_channels=4, weights=str(path))
    assert four.body.conv1.weight.shape[1] == 4
    torch.testing.assert_close(four.body.layer1[0].conv1.weight, rgb.body.layer1[0].conv1.weight)


def test_a_model_file_records_a_network_another_objective_can_rebuild(tmp_path: Path) -> None:
    from _cas_data import train_tiny_cas, write_three_class_scene

    from lcmap.methods.loading import load_model
    from lcmap.models import read_header

    scene = tmp_path / "a.tif"
    write_three_class_scene(scene, tmp_path / "a_labels.tif")
    model = train_tiny_cas(scene, tmp_path / "cas.lcmap")
    record = read_header(model).extra["network"]
    assert record["name"] == "unet" and record["config"]["in_channels"] == 3
    net = build_net(record["name"], **record["config"])
    cas, _ = load_model(model)
    net.load_state_dict({k[4:]: v for k, v in cas.state_dict().items() if k.startswith("net.")})
    net.eval()
    cas.net.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.encode(x)[0], cas.net.encode(x)[0])


def test_the_dihedral_mean_maps_a_turned_input_to_the_turned_output():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 2, 3, padding=1)  # its kernel has a direction
    ramp = torch.linspace(0, 1, 16)[:, None]  # and so has a term that grows down the rows
    fn = lambda t: conv(t) + ramp  # noqa: E731
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        mean = dihedral_mean(fn, x)
        assert not torch.allclose(mean, fn(x), atol=1e-3)
        for k in range(4):
            for flip in (False, True):
                turned = dihedral_mean(fn, dihedral(x, k, flip))
                torch.testing.assert_close(turned, dihedral(mean, k, flip))
        pointwise = lambda t: 2 * t + 1  # noqa: E731  # already symmetric: unchanged
        torch.testing.assert_close(dihedral_mean(pointwise, x), pointwise(x))
