"""``lcmap.io.writer``: output checks and provenance tags."""

from pathlib import Path

import pytest

from lcmap.errors import OutputExistsError, OutputPathError
from lcmap.io.staging import check_distinct, check_output
from lcmap.io.writer import check_map_output, provenance_tags


def test_outputs_are_checked_against_inputs_existing_files_and_each_other(tmp_path: Path) -> None:
    scene = tmp_path / "s.tif"
    scene.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is the input"):
        check_output(tmp_path / "." / "s.tif", True, inputs=[scene])
    with pytest.raises(OutputExistsError):
        check_output(scene, False)
    with pytest.raises(OutputPathError, match="same file"):
        check_distinct(tmp_path / "a.tif", tmp_path / "b" / ".." / "a.tif")
    with pytest.raises(OutputPathError, match=r"must end\s+\.tif"):
        check_map_output(tmp_path / "m.jpg", False)
    with pytest.raises(OutputPathError, match="longer than"):
        check_output(tmp_path / ("x" * 300 + ".tif"), False)


def test_provenance_tags_name_method_and_model() -> None:
    tags = provenance_tags({"method": "kmeans", "model_sha256": "abc", "lcmap_version": "9"})
    assert tags["LCMAP_METHOD"] == "kmeans" and tags["LCMAP_MODEL_SHA256"] == "abc"
    assert tags["LCMAP_VERSION"] == "9" and '"method": "kmeans"' in tags["LCMAP_PROVENANCE"]
