"""The frozen backbone's precision: bf16 only where the device has it natively, fp32 features
always, and features that keep their direction under bf16."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from _tiny_vit import TINY

from lcmap.methods._frozen_vit import FrozenViT
from lcmap.nets import vit as _vit


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vit, "_NATIVE_BF16", True)


def test_cpu_without_native_bf16_stays_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vit, "_NATIVE_BF16", False)
    assert isinstance(_vit.backbone_precision(torch.device("cpu")), contextlib.nullcontext)
    assert isinstance(_vit.backbone_precision(torch.device("meta")), contextlib.nullcontext)


def test_cpu_with_native_bf16_autocasts(native_bf16: None) -> None:
    with _vit.backbone_precision(torch.device("cpu")):
        a = torch.ones(4, 4)
        assert (a @ a).dtype == torch.bfloat16


def test_flags_are_read_from_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vit, "_NATIVE_BF16", None)
    real_read = _vit.Path.read_text
    fake = "flags : fpu sse avx512f avx512_bf16\n"
    monkeypatch.setattr(
        _vit.Path,
        "read_text",
        lambda self, *a, **k: fake if str(self) == "/proc/cpuinfo" else real_read(self, *a, **k),
    )
    assert _vit.cpu_has_native_bf16()
    monkeypatch.setattr(_vit, "_NATIVE_BF16", None)
    fake = "flags : fpu sse avx512f avx512bw\n"
    assert not _vit.cpu_has_native_bf16()


def _frozen(monkeypatch: pytest.MonkeyPatch) -> FrozenViT:
    # A tiny random ViT-S/14-shaped backbone, no weights file.
    monkeypatch.setattr(_vit, "load_backbone_weights", lambda *a, **k: None)
    monkeypatch.setattr(
        _vit,
        "resolve_weights",
        lambda *a, **k: _vit.ResolvedWeights(path="none", sha256=None, source="test"),
    )
    torch.manual_seed(0)
    vit = FrozenViT("test", "vit_small_patch14_dinov2", None, None, 2, dict(TINY), 56)
    vit.set_in_channels(3)
    return vit


def test_features_are_fp32_and_keep_their_direction_under_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vit = _frozen(monkeypatch)
    images = torch.rand(2, 3, 56, 56)
    monkeypatch.setattr(_vit, "_NATIVE_BF16", False)
    exact = vit.features(images)
    monkeypatch.setattr(_vit, "_NATIVE_BF16", True)
    rounded = vit.features(images)
    assert exact.dtype == rounded.dtype == torch.float32
    assert not torch.equal(exact, rounded)  # bf16 did run
    cosine = F.cosine_similarity(exact, rounded, dim=1)
    assert cosine.min() > 0.99
