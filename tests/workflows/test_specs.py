"""The request value objects: checked when made, so a bad value fails before any work."""

import dataclasses
from pathlib import Path

import pytest

from lcmap.errors import InvalidOptionError
from lcmap.workflows.specs import MAX_HALO, MethodSpec, OutputSpec, RunSpec, ScaleSpec, TilingSpec


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TilingSpec(tile=0), "tile=0 is out of range"),
        (lambda: TilingSpec(halo=-1), "halo=-1 is out of range"),
        (lambda: TilingSpec(halo=MAX_HALO + 1), f"use 0 to {MAX_HALO}"),
        (lambda: RunSpec(seed=-1), "seed=-1 is out of range"),
        (lambda: RunSpec(seed=2**32), "seed=4294967296 is out of range"),
        (lambda: RunSpec(batch_size=0), "batch_size=0 is out of range"),
        (lambda: ScaleSpec(workers=0), "workers=0 is out of range"),
        (lambda: ScaleSpec(workers=2, scheduler="tcp://h:8786"), "not both"),
        (lambda: ScaleSpec(resume=True, part_rows=0), "part_rows=0"),
    ],
)
def test_a_bad_value_is_refused_when_the_spec_is_made(make, message):
    with pytest.raises(InvalidOptionError, match=message):
        make()


def test_shorthands_and_defaults():
    assert MethodSpec.of("kmeans") == MethodSpec(name="kmeans")
    assert MethodSpec.of(None) == MethodSpec()
    spec = MethodSpec("kmeans", classes=3)
    assert MethodSpec.of(spec) is spec
    assert spec.option_dict is None and spec.band_list is None
    assert MethodSpec(bands=(4, 3, 2), options={"a": 1}).band_list == [4, 3, 2]
    out = OutputSpec.of("m.tif")
    assert out == OutputSpec(Path("m.tif")) and not out.overwrite and isinstance(out.path, Path)
    assert OutputSpec("m.tif").path == Path("m.tif")
    assert not ScaleSpec().in_parts
    assert ScaleSpec(resume=True).in_parts and ScaleSpec(workers=1).in_parts


def test_specs_are_frozen_so_they_are_safe_as_defaults():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunSpec().seed = 3  # type: ignore[misc]
