"""``lcmap.scale.parts``: a map cut into parts of tile rows, each made alone, is the same map."""

from pathlib import Path

import pytest

from lcmap.scale import parts_folder
from lcmap.scale.parts import plan_parts
from lcmap.tiling import plan_tiles
from lcmap.workflows.specs import ScaleSpec
from tests.scale._scale_data import kmeans_map, needs_rgb


def test_parts_cover_every_row_once_whatever_the_workers() -> None:
    plan = plan_tiles(1000, 777, 64, 16)
    parts = plan_parts(plan, 3)
    rows = [r for p in parts for r in range(p.first_row, p.first_row + p.rows)]
    assert rows == list(range(777))
    assert [t for p in parts for t in p.tile_rows] == list(range(plan.rows))
    # The default: about 16 Mpx a part, so a 16000 px scene with 512 px tiles makes 16 parts.
    assert len(plan_parts(plan_tiles(16000, 16000, 512, 8))) == 16
    with pytest.raises(ValueError, match="at least one tile row"):
        plan_parts(plan, 0)


@needs_rgb
def test_parts_here_give_the_byte_identical_map(tmp_path: Path) -> None:
    """Parts computed in this process and assembled through a VRT: the same COG, byte for byte,
    as the streamed one-pass map (pixels, colour table, tags, overviews)."""
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    kmeans_map(a, 128)
    result = kmeans_map(b, 128, ScaleSpec(resume=True, part_rows=2))
    assert result.parts_computed == 3 and result.parts_reused == 0
    assert a.read_bytes() == b.read_bytes()
    assert not parts_folder(b).exists()  # removed once the map is published
