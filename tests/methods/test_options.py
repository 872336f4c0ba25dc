"""The option model: one frozen dataclass per method, converted and checked in one place."""

import dataclasses

import pytest

from lcmap.errors import InvalidOptionError
from lcmap.methods.options import make_config, option, option_help


@dataclasses.dataclass(frozen=True)
class Demo:
    count: int = option(3, "how many", low=1, high=10)
    rate: float = option(0.5, "a rate", above=0, below=1)
    on: bool = option(False, "a switch")
    name: str = option("a", "a name", choices=("a", "b"))
    seed: int | None = option(None, "optional", low=0)


def test_strings_from_the_command_line_are_converted():
    cfg = make_config(Demo, "demo", {"count": "4", "rate": "0.25", "on": "yes", "seed": "7"})
    assert cfg == Demo(count=4, rate=0.25, on=True, seed=7)
    assert make_config(Demo, "demo", {"count": 5.0, "seed": None}).count == 5  # None: default


@pytest.mark.parametrize(
    "options,message",
    [
        ({"cont": 2}, "has no option 'cont' (did you mean count?); its options: count, rate"),
        ({"count": "many"}, "count='many' is not a whole number"),
        ({"count": 2.5}, "count=2.5 must be a whole number"),
        ({"count": 11}, "count=11 must be from 1 to 10"),
        ({"count": float("inf")}, "must be a finite number"),
        ({"count": True}, "must be a number, not true or false"),
        ({"rate": 0}, "rate=0.0 must be above 0"),
        ({"rate": 1}, "rate=1.0 must be below 1"),
        ({"on": "maybe"}, "on='maybe' must be true or false"),
        ({"name": "c"}, "name='c' must be one of a, b"),
        ({"name": 3}, "name=3 must be text"),
        ({"seed": -1}, "seed=-1 must be at least 0"),
    ],
)
def test_bad_options_are_one_clear_error(options, message):
    with pytest.raises(InvalidOptionError) as info:
        make_config(Demo, "demo", options)
    assert message in str(info.value)


def test_help_comes_from_the_fields():
    assert option_help(Demo)["rate"] == "a rate"


def test_kmeans_and_single_scene_take_their_options_from_one_dataclass():
    from lcmap.methods import get_method
    from lcmap.methods.kmeans import KMeansConfig

    method = get_method("kmeans", num_classes=4, smooth="2")
    assert method.config() == dataclasses.asdict(KMeansConfig(num_classes=4, smooth=2))
    with pytest.raises(InvalidOptionError, match="samples=3 must be at least num_classes"):
        get_method("kmeans", num_classes=4, samples=3)
    single = get_method("single_scene", num_classes=4, iterations="20")
    assert single.config()["iterations"] == 20
