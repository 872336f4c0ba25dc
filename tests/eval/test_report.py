"""``lcmap.eval.report``: the JSON report and the confusion-matrix picture."""

import json
from pathlib import Path

import pytest

from lcmap.errors import OutputExistsError
from lcmap.eval import evaluate, plot_confusion, write_json
from tests.eval._cases import HUNGARIAN_CONFUSION


def test_json_report_content(hand_case: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = hand_case
    result = evaluate(pred, truth, ignore=(7, 255), class_names=["a", "b", "c", "d"])
    out = write_json(result, tmp_path / "report.json")
    data = json.loads(out.read_text())
    assert data["match"] == "hungarian"
    assert data["ignore"] == [7, 255]
    assert data["pixels"] == 15
    assert data["accuracy"] == pytest.approx(11 / 15, abs=1e-6)
    assert data["mapping"] == {"0": 0, "1": 1, "2": None, "3": 2}
    assert [c["name"] for c in data["classes"]] == ["a", "b", "c", "d"]
    assert data["classes"][1]["clusters"] == [1]
    assert data["classes"][3]["iou"] is None  # NaN -> null, valid JSON
    assert data["confusion"]["matrix"][1] == [1, 4, 0, 0, 3]
    assert data["cluster_counts"]["matrix"][2] == [0, 3, 0, 0]
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_json(result, out)
    write_json(result, out, overwrite=True)


def test_plot_writes_png(tmp_path: Path) -> None:
    out = plot_confusion(HUNGARIAN_CONFUSION, ["a", "b", "c"], tmp_path / "cm.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*part"))  # no temporary file left behind
    with pytest.raises(OutputExistsError):
        plot_confusion(HUNGARIAN_CONFUSION, ["a", "b", "c"], out)
