"""The lcmap model file: safetensors tensors plus a JSON header. Data, never code.

A model file is a plain safetensors file. Its ``__metadata__`` holds one key, ``lcmap``, whose
value is the JSON :class:`ModelHeader` (method, its config, bands and their normalisation,
number of classes, class names and colours, backbone facts, lcmap version). Loading parses
JSON and tensors only; nothing is unpickled (DESIGN.md contract 6).

Example:
    >>> save_model("kmeans.lcmap", method, header)      # doctest: +SKIP
    >>> method, header = load_model("kmeans.lcmap")      # doctest: +SKIP
"""

import contextlib
import hashlib
import json
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lcmap import __version__
from lcmap.errors import (
    InvalidModelError,
    ModelMismatchWarning,
    OutputPathError,
)

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from torch import Tensor

    from lcmap.io.scene import ReadSpec


class HasState(Protocol):
    """What a model file stores of a method: its tensors (a :class:`~lcmap.methods.base.
    Segmenter` is one; this floor does not import the methods above it)."""

    def state_dict(self) -> "dict[str, Tensor]": ...


FORMAT = "lcmap-model"
#: 2 added ``norm_clip`` (an unclipped stretch); a reader of version 1 would clip silently.
FORMAT_VERSION = 2
_META_KEY = "lcmap"
# A safetensors header larger than this is not a model we wrote (guards against garbage input).
_MAX_HEADER_BYTES = 100_000_000


@dataclass
class ModelHeader:
    """Everything needed to rebuild a method and apply it to a new scene.

    Attributes:
        method: registry name of the method.
        config: keyword arguments that rebuild the method before its tensors are loaded.
        num_classes: number of classes K (labels 0..K-1).
        in_channels: number of bands the method reads.
        bands: 1-based band indexes read from the scenes the model was fitted on.
        norm_low: per-band value mapped to 0 (a low percentile of the training scenes).
        norm_high: per-band value mapped to 1 (a high percentile).
        norm_clip: whether the stretch is clipped to 0..1 (True in files from before it was
            recorded, which were all clipped).
        class_names: one name per class.
        colours: one RGB triple per class.
        extra: method-specific facts (backbone name, weight sha256...).
        band_facts: per band read, what the training scenes said of it: ``description``,
            ``colorinterp`` and ``dtype`` (empty in files from before they were recorded);
            a scene that disagrees is warned about when the model is applied.
        lcmap_version: version that wrote the file.
    """

    method: str
    config: dict[str, Any]
    num_classes: int
    in_channels: int
    bands: list[int]
    norm_low: list[float]
    norm_high: list[float]
    class_names: list[str]
    colours: list[list[int]]
    extra: dict[str, Any] = field(default_factory=dict)
    band_facts: list[dict[str, Any]] = field(default_factory=list)
    norm_clip: bool = True
    lcmap_version: str = __version__
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def read_spec(self) -> "ReadSpec":
        """The bands and normalisation the model reads scenes with."""
        from lcmap.io.scene import Normalisation, ReadSpec

        norm = Normalisation(tuple(self.norm_low), tuple(self.norm_high), self.norm_clip)
        return ReadSpec(tuple(self.bands), norm)

    def to_json(self) -> str:
        """The header as a JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = "model") -> "ModelHeader":
        """Validate and build a header from parsed JSON.

        Raises:
            InvalidModelError: not an lcmap header, or a field of the wrong type, length or
                range (the message names the field).
        """
        if not isinstance(data, dict):
            raise InvalidModelError(f"{path} is not an lcmap model (its header is not an object).")
        if data.get("format") != FORMAT:
            raise InvalidModelError(
                f"{path} is not an lcmap model (format {data.get('format')!r})."
            )
        version = data.get("format_version", 0)
        if not _is_int(version):
            raise InvalidModelError(f"{path}: header field format_version must be an integer.")
        if version > FORMAT_VERSION:
            raise InvalidModelError(
                f"{path} uses model format {data['format_version']}, newer than this lcmap "
                f"({__version__}) reads ({FORMAT_VERSION}); upgrade lcmap."
            )
        names = set(cls.__dataclass_fields__)
        try:
            header = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise InvalidModelError(f"{path} has an incomplete lcmap header: {exc}.") from exc
        problem = header._problem()
        if problem:
            raise InvalidModelError(f"{path}: header field {problem}; the file is corrupt.")
        return header

    def _problem(self) -> str | None:
        """What is wrong with the header's fields, or None."""
        k, c = self.num_classes, self.in_channels
        checks: list[tuple[str, bool, str]] = [
            ("method", isinstance(self.method, str) and bool(self.method), "a method name"),
            ("config", isinstance(self.config, dict), "an object"),
            ("num_classes", _is_int(k) and 1 <= k <= 65534, "an integer from 1 to 65534"),
            ("in_channels", _is_int(c) and c >= 1, "a positive integer"),
            ("extra", isinstance(self.extra, dict), "an object"),
            ("norm_clip", isinstance(self.norm_clip, bool), "true or false"),
            (
                "band_facts",
                isinstance(self.band_facts, list)
                and len(self.band_facts) in (0, c if _is_int(c) else -1)
                and all(isinstance(f, dict) for f in self.band_facts),
                "a list of one object per band",
            ),
            ("lcmap_version", isinstance(self.lcmap_version, str), "a string"),
        ]
        for name, ok, what in checks:
            if not ok:
                return f"{name} must be {what}"
        lists: list[tuple[str, Any, int, Any, str]] = [
            ("bands", self.bands, c, lambda b: _is_int(b) and b >= 1, "band numbers from 1"),
            ("norm_low", self.norm_low, c, _is_finite, "finite numbers"),
            ("norm_high", self.norm_high, c, _is_finite, "finite numbers"),
            ("class_names", self.class_names, k, lambda n: isinstance(n, str), "strings"),
            ("colours", self.colours, k, _is_rgb, "[r, g, b] triples of 0-255"),
        ]
        for name, value, length, ok, what in lists:
            if not isinstance(value, list) or len(value) != length:
                unit = "class" if length == k and name in ("class_names", "colours") else "band"
                return f"{name} must list {length} values, one per {unit}"
            if not all(ok(v) for v in value):
                return f"{name} must hold {what}"
        if not all(h > lo for lo, h in zip(self.norm_low, self.norm_high, strict=True)):
            return "norm_high must be above norm_low for every band"
        return None


def _check_tensors(state: dict[str, Any], path: str | Path) -> None:
    """Refuse tensors no lcmap model holds: integers where parameters are, NaN or infinity.

    Learnt parameters are floating point; the only integer tensors lcmap writes are
    BatchNorm's batch counters.

    Raises:
        InvalidModelError: naming the first bad tensor.
    """
    for name, tensor in state.items():
        if tensor.is_floating_point():
            if not bool(tensor.isfinite().all()):
                raise InvalidModelError(f"{path}: tensor {name} holds NaN or infinite values.")
        elif not name.endswith("num_batches_tracked"):
            raise InvalidModelError(
                f"{path}: tensor {name} has dtype {tensor.dtype}; lcmap stores parameters as "
                "floating point, so the file was not written by lcmap."
            )


def read_tensors(path: str | Path) -> "dict[str, Tensor]":
    """A model file's tensors, its framing checked first (:func:`check_safetensors`) and its
    values after (:func:`_check_tensors`).

    Raises:
        InvalidModelError: the file is corrupt, or holds tensors lcmap never writes.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        check_safetensors(path)
        facts = _file_facts(path)
        data = Path(path).read_bytes()  # read once: the tensors and the file's sha256
        state = load(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidModelError(f"{path} is corrupt: its tensors cannot be read ({exc}).") from exc
    _remember_sha256(facts, hashlib.sha256(data).hexdigest())
    _check_tensors(state, path)
    return state


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_rgb(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(_is_int(v) and 0 <= v <= 255 for v in value)
    )


class NotAModelError(InvalidModelError):
    """The file is not an lcmap model at all (not safetensors, or no lcmap header)."""


#: Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {
    **{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1},
    **{"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1},
}


def check_safetensors(path: str | Path) -> None:
    """Check a safetensors file's framing before anything is allocated for it.

    The header length must fit the file, the header must be a JSON object of tensors with a
    known dtype, a shape of non-negative integers and byte offsets inside the file that match
    the shape, so that a crafted or truncated file can neither allocate a huge buffer nor
    read past its end.

    Raises:
        ValueError: what is wrong, in a few words.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError("the file is shorter than a safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise ValueError(f"its header length {length} does not fit the file ({size} bytes)")
        header = _json(fh.read(length), "its header")
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    data = size - 8 - length
    for name, info in header.items():
        if name == "__metadata__":
            _check_metadata(info)
            continue
        if not isinstance(info, dict):
            raise ValueError(f"tensor {name} has no description")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise ValueError(f"tensor {name} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
            raise ValueError(f"tensor {name} has a malformed shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
        ):
            raise ValueError(f"tensor {name} has byte offsets outside the file")
        if math.prod(shape) * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {name}'s shape {shape} does not match its bytes")


def _json(raw: bytes | str, what: str) -> Any:
    """Parse JSON from a file that may be crafted.

    Raises:
        ValueError: not JSON, not UTF-8, or nested past the parser's depth.
    """
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be a model header") from None


def _check_metadata(meta: Any) -> None:
    """safetensors' ``__metadata__`` is an object of strings.

    Raises:
        ValueError: it is not.
    """
    if not isinstance(meta, dict):
        raise ValueError("its __metadata__ is not a JSON object")
    for key, value in meta.items():
        if not isinstance(value, str):
            raise ValueError(f"its __metadata__ field {key!r} is not a string")


#: sha256 of the files hashed or loaded in this process, by (path, inode, size, mtime).
_HASHES: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks; a file hashed or loaded (:func:`read_tensors`)
    before in this process, and not changed since (same inode, size and modification time), is
    not read again (one run loads its model, and records its hash for the parts and the map)."""
    facts = _file_facts(path)
    if facts not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _remember_sha256(facts, digest.hexdigest())
    return _HASHES[facts]


def _file_facts(path: str | Path) -> tuple[str, int, int, int]:
    facts = os.stat(path)
    return str(Path(path).resolve()), facts.st_ino, facts.st_size, facts.st_mtime_ns


def _remember_sha256(facts: tuple[str, int, int, int], sha: str) -> None:
    if len(_HASHES) >= 64:
        _HASHES.clear()
    _HASHES[facts] = sha


def warn_if_unlike(src: "DatasetReader", header: ModelHeader, seed: int = 0) -> None:
    """Warn (:class:`ModelMismatchWarning`) when ``src``'s bands look unlike those ``header``'s
    model was trained on: other band descriptions, colours, data type, or values far outside
    its normalisation. Another sensor or band order gives the classes another meaning."""
    import warnings

    from lcmap.io.scene import band_facts, band_mismatches, scene_statistics

    bands = list(header.bands)
    problems = band_mismatches(header.band_facts, band_facts(src, bands))
    stats = scene_statistics([src], bands, seed)
    for i, (lo, hi, slo, shi) in enumerate(
        zip(header.norm_low, header.norm_high, stats.low, stats.high, strict=True), start=1
    ):
        span = hi - lo
        if abs(slo - lo) > 0.5 * span or abs(shi - hi) > 0.5 * span:
            problems.append(f"values {slo:g}..{shi:g} (model: {lo:g}..{hi:g}) on band {i}")
    if problems:
        more = "; ..." if len(problems) > 3 else ""
        warnings.warn(
            f"{Path(src.name).name} looks unlike the scenes the model was trained on "
            f"({'; '.join(problems[:3])}{more}): another sensor or band order gives classes "
            "another meaning.",
            ModelMismatchWarning,
            stacklevel=3,
        )


def check_model_path(path: str | Path) -> None:
    """Refuse a model path that is missing, a folder, a device, a FIFO or a link loop.

    Raises:
        InputNotFoundError: nothing is there (or a link points nowhere).
        InvalidModelError: something other than a regular file is there.
    """
    from lcmap.io.scene import check_input_file

    check_input_file(path, "Model file", "a .lcmap model file", InvalidModelError)


def read_header(path: str | Path) -> ModelHeader:
    """Read a model's JSON header without loading tensors (and without importing torch).

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidModelError: the file is not a readable lcmap model.
    """
    path = Path(path)
    check_model_path(path)
    try:
        with open(path, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise ValueError("file shorter than a safetensors header")
            (size,) = struct.unpack("<Q", raw_len)
            if size > _MAX_HEADER_BYTES or size > path.stat().st_size - 8:
                raise ValueError("header length is out of range")
            header = _json(fh.read(size), "the header")
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = header.get("__metadata__") or {}
        _check_metadata(meta)
        if _META_KEY not in meta:
            raise ValueError(f"its metadata has no {_META_KEY!r} field")
        data = _json(meta[_META_KEY], f"the {_META_KEY!r} field")
    except ValueError as exc:
        raise NotAModelError(
            f"{path} is not a valid lcmap model file ({exc}); re-create it with 'lcmap train' "
            "or saved by a segment run (save_model=...)."
        ) from exc
    return ModelHeader.from_dict(data, path)


def save_model(path: str | Path, method: HasState, header: ModelHeader) -> None:
    """Write ``method``'s tensors and ``header`` to ``path`` atomically (temp file + rename)."""
    from lcmap.io.staging import publish

    with stage_model(path, method, header) as tmp:
        publish(tmp, path)


@contextlib.contextmanager
def stage_model(path: str | Path, method: HasState, header: ModelHeader) -> Iterator[Path]:
    """Write the model to a temporary file beside ``path`` and yield it, unpublished.

    The caller publishes it (:func:`lcmap.io.writer.publish`) once everything else of its run
    has succeeded; otherwise, or if it never does, the temporary file is removed on exit.
    """
    from safetensors.torch import save_file

    from lcmap.io.staging import temp_path

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in method.state_dict().items()}
    tmp = temp_path(path, ".tmp")
    try:
        try:
            save_file(state, tmp, metadata={_META_KEY: header.to_json()})
        except Exception as exc:  # safetensors reports I/O errors as its own SafetensorError
            if "I/O error" not in str(exc):
                raise
            raise OutputPathError(
                f"Writing model {path} failed: the disk holding it is full or a file-size limit "
                f"was reached ({str(exc).splitlines()[0]}); nothing was written."
            ) from exc
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
