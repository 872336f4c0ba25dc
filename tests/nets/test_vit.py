"""``lcmap.nets.vit``: backbone weights found and read without running code, and a photograph
ViT given any number of bands without changing what it sees in a grey image."""

import pytest
import torch
from safetensors.torch import save_file

from lcmap.errors import WeightsError
from lcmap.nets.vit import (
    adapt_band_stats,
    adapt_input_channels,
    build_vit,
    read_state_dict,
    resolve_weights,
)


class _Code:
    """Pickled, this would run code on load: a weights file must never hold it."""

    def __reduce__(self):  # pragma: no cover - never unpickled
        return (print, ("ran",))


def test_dino_checkpoint_wrappers_and_heads_are_stripped(tmp_path) -> None:
    path = tmp_path / "dino.pth"
    torch.save(
        {
            "teacher": {
                "module.backbone.cls_token": torch.zeros(1, 1, 4),
                "module.head.mlp.weight": torch.zeros(2, 2),
            }
        },
        path,
    )
    assert list(read_state_dict(path)) == ["cls_token"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("code.pth", "code", "holds code"),
        ("empty.pth", b"", "empty or cut short"),
        ("nan.safetensors", "nan", "NaN or infinite"),
        ("w.onnx", b"x", "expected .safetensors or .pth"),
    ],
)
def test_a_bad_weights_file_is_one_clear_error(tmp_path, name, content, message) -> None:
    path = tmp_path / name
    if content == "code":
        torch.save({"x": _Code()}, path)
    elif content == "nan":
        save_file({"w": torch.tensor([float("nan")])}, str(path))
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        read_state_dict(path)


def test_weights_come_from_the_given_file_then_the_cache(tmp_path, monkeypatch) -> None:
    import lcmap.nets.vit as vit

    monkeypatch.setenv("LCMAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(vit, "_hub_weights", lambda *a, **k: None)  # offline
    given = tmp_path / "mine.safetensors"
    save_file({"w": torch.zeros(1)}, str(given))
    found = resolve_weights("vit_small_patch14_dinov2", given)
    assert found.source == "explicit" and found.path == given and len(found.sha256) == 64
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("vit_small_patch14_dinov2", tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="put it in"):
        resolve_weights("vit_small_patch14_dinov2")
    (tmp_path / "cache").mkdir()
    cached = tmp_path / "cache" / "vit_small_patch14_dinov2.lvd142m.safetensors"
    save_file({"w": torch.zeros(1)}, str(cached))
    assert resolve_weights("vit_small_patch14_dinov2").source == "cache"


@pytest.mark.parametrize("channels", [1, 3, 4, 12])
def test_more_or_fewer_bands_see_a_grey_image_as_rgb_did(channels: int) -> None:
    torch.manual_seed(0)
    model = build_vit("vit_small_patch14_dinov2", {"img_size": 28, "depth": 1})
    proj = model.patch_embed.proj
    grey = torch.rand(1, 1, 28, 28)
    before = proj(grey.expand(-1, 3, -1, -1))
    adapt_input_channels(model, channels)
    after = model.patch_embed.proj(grey.expand(-1, channels, -1, -1))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    stats = adapt_band_stats((0.1, 0.2, 0.3), channels)  # the mean for each band beyond RGB
    expected = [0.1, 0.2, 0.3] + [0.2] * (channels - 3) if channels >= 3 else [0.2] * channels
    assert stats == pytest.approx(expected)
