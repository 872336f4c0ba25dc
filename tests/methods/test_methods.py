"""``lcmap.methods`` (the registry): every method found by name, its facts known before it is
built, its options checked in one place with the names a user may have meant."""

import pytest

from lcmap.errors import InvalidOptionError, UnknownMethodError
from lcmap.methods import (
    check_options,
    fewshot_methods,
    get_method,
    list_methods,
    method_info,
    method_options,
)

BUILT_IN = {
    "cas",
    "cas_finetuned",
    "dino_kmeans",
    "encoder_finetuned",
    "kmeans",
    "primaps",
    "simclr",
    "single_scene",
    "stego",
}


def test_every_method_is_listed_and_found_by_its_cli_spelling() -> None:
    assert set(list_methods()) >= BUILT_IN
    assert list_methods("st*") == ["stego"]
    assert get_method("Single-Scene", num_classes=3).info.name == "single_scene"


def test_an_unknown_method_names_the_closest_one() -> None:
    with pytest.raises(UnknownMethodError, match="Did you mean 'stego'"):
        get_method("stgeo")


def test_facts_known_before_a_method_is_built() -> None:
    assert {m for m in BUILT_IN if method_info(m).rgb_first} == {"dino_kmeans", "primaps", "stego"}
    assert {"cas", "simclr", "stego"} <= set(fewshot_methods())
    assert "kmeans" not in fewshot_methods()


def test_options_are_checked_once_with_a_hint() -> None:
    with pytest.raises(InvalidOptionError, match="did you mean smooth"):
        check_options("kmeans", {"smoth": 2})
    with pytest.raises(InvalidOptionError, match="finite"):
        check_options("kmeans", {"samples": float("inf")})
    with pytest.raises(InvalidOptionError, match="whole number"):
        check_options("kmeans", {"samples": 2.5})
    assert check_options("kmeans", {"samples": 1e5}) == {"samples": 100_000}


def test_every_built_in_option_has_a_type_default_and_help() -> None:
    for name in BUILT_IN:
        for option in method_options(name):
            assert option.type and option.help, (name, option)
    smooth = next(o for o in method_options("kmeans") if o.name == "smooth")
    assert smooth.default == 1 and smooth.type == "int"
