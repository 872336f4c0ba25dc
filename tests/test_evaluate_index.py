"""``lcmap.workflows.evaluate_index`` and ``read_index``: segmenting and scoring an index CSV."""

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from _helpers import SPECTRA, quadrant_truth

from lcmap.errors import (
    InputNotFoundError,
    InvalidOptionError,
    InvalidSceneError,
    NoNodataWarning,
)
from lcmap.eval import read_index
from lcmap.workflows.evaluate_index import evaluate_index
from lcmap.workflows.specs import MethodSpec, OutputSpec, RunSpec, TilingSpec
from tests.eval._cases import TRANSFORM, write_labels


def _write_index(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    lines = ["set,name,scene,truth,classes"]
    lines += [f'demo,{name},{scene},{truth},"a,b,c,d"' for name, scene, truth in rows]
    index = tmp_path / "index.csv"
    index.write_text("\n".join(lines) + "\n")
    return index


def test_read_index_resolves_paths_and_reports_missing_files(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    for f in ("s/one.tif", "t1.tif"):
        (tmp_path / f).write_bytes(b"")
    index = _write_index(tmp_path, [("one", "s/one.tif", "t1.tif")])
    (entry,) = read_index(index)
    assert entry.scene == tmp_path / "s" / "one.tif" and entry.classes == ["a", "b", "c", "d"]
    index = _write_index(tmp_path, [("two", "s/two.tif", "t1.tif")])
    with pytest.raises(InputNotFoundError, match=r"line 2 lists scene .*two.tif"):
        read_index(index)
    (tmp_path / "bad.csv").write_text("name,scene\nx,y\n")
    with pytest.raises(InvalidSceneError, match=r"lacks \['set', 'truth', 'classes'\]"):
        read_index(tmp_path / "bad.csv")


def test_evaluate_index_pools_after_per_scene_matching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two scenes whose cluster ids mean different classes: per-scene matching, then sum."""
    import lcmap.workflows.segment

    truth = np.array([[0, 0, 1, 1, 2], [0, 0, 1, 2, 2], [3, 3, 3, 2, 2]], np.uint8)
    # Scene one: cluster = class + 1; scene two: reversed ids and one wrong pixel.
    maps = {"one": truth + 1, "two": (3 - truth).astype(np.uint8)}
    maps["two"][0, 0] = 2
    for name in maps:
        write_labels(tmp_path / f"{name}_scene.tif", truth)
        write_labels(tmp_path / f"{name}_truth.tif", truth)
    index = _write_index(
        tmp_path, [(n, f"{n}_scene.tif", f"{n}_truth.tif") for n in ("one", "two")]
    )
    calls: list[dict[str, Any]] = []

    def fake_segment(scene: Path, output: Path, **kwargs: Any) -> None:
        calls.append(kwargs)
        warnings.warn(f"{scene} declares no nodata", NoNodataWarning, stacklevel=2)
        write_labels(OutputSpec.of(output).path, maps[Path(scene).name.split("_")[0]])

    monkeypatch.setattr(lcmap.workflows.segment, "segment", fake_segment)
    done: list[tuple[int, int]] = []
    with pytest.warns(NoNodataWarning) as record:
        result = evaluate_index(
            index,
            method="toy",
            tiling=TilingSpec(tile=64),
            run=RunSpec(seed=5, progress=lambda d, t: done.append((d, t))),
        )
    assert len(record) == 1  # the same lcmap warning from every scene is shown once
    # default k = number of truth classes
    assert [c["method"] for c in calls] == [MethodSpec("toy", classes=4)] * 2
    assert calls[0]["tiling"] == TilingSpec(tile=64) and calls[0]["run"] == RunSpec(seed=5)
    assert result.segment_options == {"seed": 5, "tile": 64}
    assert done == [(1, 2), (2, 2)]
    one, two = result.scenes
    assert one.result.accuracy == 1.0
    assert two.result.accuracy == pytest.approx(14 / 15)
    np.testing.assert_array_equal(result.confusion, one.result.confusion + two.result.confusion)
    assert result.accuracy == pytest.approx(29 / 30)
    assert result.class_names == ["a", "b", "c", "d"]


@pytest.mark.slow  # 5-12 s on 2 busy cores, most of it in k-means fitting
def test_evaluate_index_with_kmeans(tmp_path: Path) -> None:
    """Real segmentation of two small quadrant scenes: k-means recovers the quadrants."""
    rows = []
    truth = quadrant_truth(45, 67)
    for i in range(2):
        noise = np.random.default_rng(i).normal(0, 3, (45, 67, 3))
        image = np.clip(SPECTRA[truth, :3] + noise, 1, 255).astype(np.uint8).transpose(2, 0, 1)
        with rasterio.open(
            tmp_path / f"scene{i}.tif",
            "w",
            driver="GTiff",
            width=67,
            height=45,
            count=3,
            dtype="uint8",
            crs="EPSG:32618",
            transform=TRANSFORM,
            nodata=0,
        ) as dst:
            dst.write(image)
        write_labels(tmp_path / f"truth{i}.tif", truth)
        rows.append((f"s{i}", f"scene{i}.tif", f"truth{i}.tif"))
    result = evaluate_index(
        _write_index(tmp_path, rows),
        method=MethodSpec("kmeans", options={"samples": 5000}),
    )
    assert len(result.scenes) == 2
    # Quadrant edges may go either way (k-means features can include smoothed bands).
    assert result.accuracy > 0.95
    assert result.miou > 0.9
    assert all(s.result.accuracy > 0.95 for s in result.scenes)


def test_an_index_of_several_sets_is_scored_one_set_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index of sets with their own classes (mr_dev's layout): pooling needs one set, which
    ``sets`` picks; the error says so, and a set the index lacks is named with those it has."""
    import lcmap.workflows.segment

    truth = np.array([[0, 1], [1, 0]], np.uint8)
    write_labels(tmp_path / "scene.tif", truth)
    write_labels(tmp_path / "truth.tif", truth)
    lines = [
        "set,name,scene,truth,classes",
        'towns,a,scene.tif,truth.tif,"road,roof"',
        'fields,b,scene.tif,truth.tif,"crop,fallow"',
    ]
    index = tmp_path / "index.csv"
    index.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(
        lcmap.workflows.segment,
        "segment",
        lambda scene, output, **kw: write_labels(OutputSpec.of(output).path, truth),
    )
    with pytest.raises(InvalidSceneError, match=r"choose one set with sets= \(fields, towns\)"):
        evaluate_index(index)
    with pytest.raises(InvalidOptionError, match="no set forest; its sets: fields, towns"):
        evaluate_index(index, sets=["forest"])
    result = evaluate_index(index, sets=["fields"])
    assert [s.name for s in result.scenes] == ["b"] and result.class_names == ["crop", "fallow"]
