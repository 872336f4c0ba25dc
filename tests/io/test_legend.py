"""``lcmap.io.legend``: class names and colours as GDAL, QGIS and legend files give them."""

import xml.etree.ElementTree as ET

import pytest

from lcmap.errors import InvalidSceneError
from lcmap.io.legend import category_xml, default_colours, named_colours, read_legend, style_qml


def test_category_document_names_every_class_with_its_colour() -> None:
    xml = category_xml(["water & sea", "land"], [(0, 0, 255), (10, 200, 30)])
    assert "<Category>water &amp; sea</Category>" in xml
    assert '<Row index="1"><F>1</F><F>land</F><F>10</F><F>200</F><F>30</F></Row>' in xml


def test_the_qgis_style_lists_exactly_the_classes_with_their_names_and_colours() -> None:
    names, colours = ["water", "trees & grass", "built"], [(0, 0, 255), (0, 128, 0), (200, 0, 0)]
    root = ET.fromstring(style_qml(names, colours))
    entries = root.findall(".//paletteEntry")
    assert [e.get("label") for e in entries] == names
    assert [int(e.get("value")) for e in entries] == [0, 1, 2]
    assert [e.get("color") for e in entries] == ["#0000ff", "#008000", "#c80000"]


def test_default_colours_are_distinct_up_to_the_palette_and_named_ones_familiar() -> None:
    colours = default_colours(8)
    assert len(set(colours)) == 8
    water, other = named_colours(["Water", "class 1"])
    assert water[2] > water[0] and other == default_colours(2)[1]
    # The dev sets' and the usual legends' spellings: separators and case do not matter.
    built, farm, meadow, shrub, forest = named_colours(
        ["built_up", "Farmland", "meadow", "Shrubland", "forest"]
    )
    assert built == named_colours(["Built-up"])[0] == named_colours(["urban"])[0]
    assert farm == named_colours(["cropland"])[0] and meadow == named_colours(["grassland"])[0]
    assert shrub == named_colours(["scrub"])[0] != named_colours(["class 3"] * 4)[3]
    # Each familiar colour says what it is: water bluest, forest and meadow greenest.
    assert len({built, farm, meadow, forest}) == 4
    assert forest[1] > max(forest[0], forest[2]) and meadow[1] > max(meadow[0], meadow[2])


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ('{"0": "water", "2": "built"}', ".json", {0: "water", 2: "built"}),
        ('["water", "land"]', ".json", {0: "water", 1: "land"}),
        ("id,name\n0,water\n1,land\n", ".csv", {0: "water", 1: "land"}),
        ("\ufeff0,water\n1,land\n", ".csv", {0: "water", 1: "land"}),  # Excel's CSV UTF-8
    ],
)
def test_a_legend_reads_from_json_or_csv(tmp_path, text, suffix, expected) -> None:
    path = tmp_path / f"legend{suffix}"
    path.write_text(text, encoding="utf-8")
    assert read_legend(path) == expected


@pytest.mark.parametrize("text", ["0;water\n", "0,water\nx,land\n", "{not json", ""])
def test_a_bad_legend_is_one_clear_error(tmp_path, text) -> None:
    path = tmp_path / "legend.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidSceneError, match="Legend"):
        read_legend(path)
