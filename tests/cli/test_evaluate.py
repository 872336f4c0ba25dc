"""``lcmap evaluate``: exit codes, the table on stdout, messages on stderr, JSON and plot files."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from lcmap.cli import app
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec
from tests.eval._cases import write_labels

runner = CliRunner()

# 3 x 5 maps: truth classes 0..2 (255 = unlabelled); clusters 0..3 where 3 is a second cluster
# of class 1 that Hungarian leaves unmatched (2 px wrong), majority merges into class 1.
TRUTH = np.array([[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [2, 2, 2, 255, 255]], np.uint8)
PRED = np.array([[5, 5, 5, 7, 7], [5, 5, 7, 3, 3], [9, 9, 9, 3, 3]], np.uint8)


@pytest.fixture
def maps(tmp_path: Path) -> tuple[Path, Path]:
    return write_labels(tmp_path / "pred.tif", PRED), write_labels(tmp_path / "truth.tif", TRUTH)


def invoke(*args: Any) -> Any:
    return runner.invoke(app, ["evaluate", *[str(a) for a in args]])


def test_evaluate_prints_table_and_writes_json_and_plot(
    maps: tuple[Path, Path], tmp_path: Path
) -> None:
    pred, truth = maps
    report, plot = tmp_path / "report.json", tmp_path / "cm.png"
    result = invoke(
        pred, truth, "--class-names", "bare,built,water", "--json", report, "--plot", plot
    )
    assert result.exit_code == 0, result.output
    assert "built" in result.stdout and "unmatched clusters 3" in result.stdout
    assert "accuracy 0.8462" in result.stdout  # 11 of 13 labelled pixels
    assert f"Wrote {report}" in result.stderr
    data = json.loads(report.read_text())
    assert data["mapping"] == {"3": None, "5": 0, "7": 1, "9": 2}
    assert data["pixels"] == 13
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_match_majority_and_none(maps: tuple[Path, Path]) -> None:
    pred, truth = maps
    result = invoke(pred, truth, "--match", "majority")
    assert result.exit_code == 0, result.output
    assert "accuracy 1.0000" in result.stdout
    result = invoke(pred, truth, "--match", "none")
    assert result.exit_code == 0
    assert "accuracy 0.0000" in result.stdout


def test_evaluate_match_names(maps: tuple[Path, Path]) -> None:
    import rasterio

    pred, truth = maps
    result = invoke(pred, truth, "--match", "names", "--class-names", "bare,built,water")
    assert result.exit_code == 1 and "has no class names" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    names = ["?"] * 10
    names[5], names[7], names[9], names[3] = "bare", "Built", "water", "built"
    with rasterio.open(pred, "r+") as dst:
        dst.update_tags(CLASS_NAMES=json.dumps(names))
    result = invoke(pred, truth, "--match", "names", "--class-names", "bare,built,water", "-q")
    assert result.exit_code == 0, result.output
    assert "accuracy 1.0000" in result.stdout  # clusters 3 and 7 are both "built"


def test_evaluate_ignore_is_repeatable(maps: tuple[Path, Path]) -> None:
    pred, truth = maps
    result = invoke(pred, truth, "--ignore", "255", "--ignore", "2", "--match", "majority")
    assert result.exit_code == 0, result.output
    assert "(10 px)" in result.stdout


def test_existing_output_needs_overwrite(maps: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = maps
    report = tmp_path / "report.json"
    report.write_text("keep me")
    result = invoke(pred, truth, "--json", report)
    assert result.exit_code == 1
    assert "exists; pass --overwrite" in result.stderr
    assert report.read_text() == "keep me"
    result = invoke(pred, truth, "--json", report, "--overwrite", "-q")
    assert result.exit_code == 0
    assert json.loads(report.read_text())["match"] == "hungarian"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Missing argument"),
        (("pred.tif",), "Missing argument"),
        (("a.tif", "b.tif", "-k", "5"), "No such option"),
        (("a.tif", "b.tif", "--index", "i.csv"), "No such option"),
        (("a.tif", "b.tif", "--match", "best"), "best"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())  # unwrap rich's box


def test_failures_exit_1_with_one_line(maps: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = maps
    result = invoke(tmp_path / "nope.tif", truth)
    assert result.exit_code == 1
    assert "nope.tif not found" in result.stderr
    assert "Traceback" not in result.output
    other = write_labels(tmp_path / "other.tif", np.zeros((4, 5), np.uint8))
    result = invoke(other, truth)
    assert result.exit_code == 1
    assert "not on one grid" in result.stderr and "gdalwarp" in result.stderr
    result = invoke(pred, truth, "--class-names", "a,b")
    assert result.exit_code == 1
    assert "has labels [2]" in result.stderr
    result = invoke(pred, truth, "--plot", tmp_path / "no" / "cm.png")
    assert result.exit_code == 1
    assert "does not exist; create it first" in result.stderr


def test_evaluate_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lcmap.workflows.segment

    rows = ["set,name,scene,truth,classes"]
    for name in ("one", "two"):
        write_labels(tmp_path / f"{name}.tif", TRUTH)
        rows.append(f'demo,{name},{name}.tif,{name}.tif,"bare,built,water"')
    index = tmp_path / "index.csv"
    index.write_text("\n".join(rows) + "\n")
    seen: list[dict[str, Any]] = []

    def fake_segment(scene: Path, output: Path, **kwargs: Any) -> None:
        seen.append(kwargs)
        assert isinstance(output, OutputSpec) and output.overwrite
        write_labels(output.path, PRED)

    monkeypatch.setattr(lcmap.workflows.segment, "segment", fake_segment)
    report = tmp_path / "pooled.json"
    result = runner.invoke(
        app,
        [
            str(a)
            for a in (
                "evaluate-index",
                index,
                "-k",
                "4",
                "--seed",
                "3",
                "-p",
                "iters=7",
                "--set",
                "demo",
                "--json",
                report,
            )
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen[0]["method"] == MethodSpec("kmeans", classes=4, options={"iters": 7})
    assert seen[0]["run"] == RunSpec(device="auto", seed=3) and seen[0]["model"] is None
    assert "pooled over 2 scenes: accuracy 0.8462" in result.stdout
    assert "two" in result.stdout
    data = json.loads(report.read_text())
    assert data["pooled"]["pixels"] == 26
    assert [s["name"] for s in data["scenes"]] == ["one", "two"]


def test_evaluate_index_names_the_sets_it_has(tmp_path: Path) -> None:
    write_labels(tmp_path / "one.tif", TRUTH)
    index = tmp_path / "index.csv"
    index.write_text('set,name,scene,truth,classes\ndemo,one,one.tif,one.tif,"a,b,c"\n')
    result = runner.invoke(app, ["evaluate-index", str(index), "--set", "other"])
    assert result.exit_code == 1 and "no set other; its sets: demo" in result.output
