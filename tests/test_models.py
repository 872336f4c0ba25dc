import hashlib
import json
import struct
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from lcmap.errors import InvalidModelError
from lcmap.methods import get_method
from lcmap.methods.loading import load_model
from lcmap.models import ModelHeader, file_sha256, read_header, save_model
from lcmap.sampling import ArraySampler


def _fitted_kmeans():
    rng = np.random.default_rng(0)
    km = get_method("kmeans", num_classes=3, smooth=1)
    km.fit(ArraySampler([rng.random((4, 80, 90)).astype(np.float32)]))
    header = ModelHeader(
        "kmeans",
        km.config(),
        3,
        4,
        [1, 2, 3, 4],
        [0.0] * 4,
        [1.0] * 4,
        ["a", "b", "c"],
        [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
    )
    return km, header


def test_round_trip_gives_the_same_predictions(tmp_path):
    km, header = _fitted_kmeans()
    save_model(tmp_path / "m.lcmap", km, header)
    loaded, h2 = load_model(tmp_path / "m.lcmap")
    assert h2 == header and loaded.class_names == ["a", "b", "c"]
    x = torch.rand(1, 4, 20, 20)
    torch.testing.assert_close(km.predict(x), loaded.predict(x))


def test_a_loaded_model_is_hashed_from_the_bytes_read_and_a_changed_file_again(
    tmp_path, monkeypatch
):
    km, header = _fitted_kmeans()
    path = tmp_path / "m.lcmap"
    save_model(path, km, header)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    load_model(path)
    with monkeypatch.context() as patched:  # the hash needs no second read of the file
        patched.setattr("builtins.open", lambda *a, **k: pytest.fail("read again"))
        assert file_sha256(path) == expected
    save_model(path, km, replace(header, class_names=["x", "y", "z"]))
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest() != expected


def test_model_file_is_plain_safetensors_with_json_header(tmp_path):
    km, header = _fitted_kmeans()
    save_model(tmp_path / "m.lcmap", km, header)
    raw = (tmp_path / "m.lcmap").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8 : 8 + size])["__metadata__"]
    assert json.loads(meta["lcmap"])["method"] == "kmeans"
    assert read_header(tmp_path / "m.lcmap").num_classes == 3


def test_newer_format_is_refused(tmp_path):
    km, header = _fitted_kmeans()
    header.format_version = 99
    save_model(tmp_path / "m.lcmap", km, header)
    with pytest.raises(InvalidModelError, match="newer than this lcmap"):
        read_header(tmp_path / "m.lcmap")


def test_tensors_that_do_not_fit_are_refused(tmp_path):
    km, header = _fitted_kmeans()
    header.config["in_channels"] = 7
    save_model(tmp_path / "m.lcmap", km, header)
    with pytest.raises(InvalidModelError, match="do not fit"):
        load_model(tmp_path / "m.lcmap")


def test_importing_io_and_cli_does_not_import_torch():
    code = (
        "import sys, lcmap.io.scene, lcmap.io.writer, lcmap.cli, lcmap.api; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
