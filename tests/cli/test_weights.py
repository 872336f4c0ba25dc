"""`lcmap weights list` and the default method `lcmap segment` picks from what is present."""

import hashlib
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from lcmap import api
from lcmap.cli import app

runner = CliRunner()


def test_list_says_what_is_present_with_its_sha256(vit_cache: Path) -> None:
    data = b"not really weights"
    (vit_cache / "vit_small_patch14_dinov2.safetensors").write_bytes(data)
    result = runner.invoke(app, ["weights", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["backbone"]: r for r in json.loads(result.stdout)}
    present = rows["vit_small_patch14_dinov2.lvd142m"]
    assert present["present"] and present["sha256"] == hashlib.sha256(data).hexdigest()
    assert not rows["vit_small_patch8_224.dino"]["present"]
    assert "dino_deitsmall8_pretrain.pth" in rows["vit_small_patch8_224.dino"]["looks_for"]


def test_default_method_is_primaps_only_when_its_weights_are_here(vit_cache: Path) -> None:
    method, why = api.default_method()
    assert method == "kmeans" and "weights=PATH" in why and str(vit_cache) in why
    (vit_cache / "vit_small_patch14_dinov2.safetensors").write_bytes(b"x")
    method, why = api.default_method()
    assert method == "primaps" and str(vit_cache) in why
    assert api.default_method({"weights": "my.pth"})[0] == "primaps"


def test_segment_without_method_says_which_it_used_and_why(
    vit_cache: Path, make_scene: Any, tmp_path: Path
) -> None:
    scene = make_scene(width=64, height=64)
    result = runner.invoke(app, ["segment", str(scene), "-o", str(tmp_path / "m.tif"), "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "method: kmeans (" in result.output
    assert "; no vit_small_patch14_dinov2.lvd142m weights" in result.output
    auto = runner.invoke(app, ["segment", str(scene), "-o", str(tmp_path / "a.tif"), "-m", "auto"])
    assert auto.exit_code == 0, auto.output
    said = [line for line in result.output.splitlines() if line.startswith("method: ")]
    assert said and said == [x for x in auto.output.splitlines() if x.startswith("method: ")]
