"""``lcmap.methods.configs``: every method's options dataclass holds defaults its own checker
accepts, a help line per option, and choices that name what exists (inits, encoders, heads)."""

import dataclasses

import pytest

from lcmap.errors import InvalidOptionError
from lcmap.methods import configs
from lcmap.methods.options import make_config, option_help
from lcmap.nets.encoder_unet import ENCODERS, HEADS

CONFIGS = [
    c
    for c in vars(configs).values()
    if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__name__.endswith("Config")
]


def test_every_method_has_an_options_dataclass() -> None:
    names = {c.__name__ for c in CONFIGS}
    assert {"KMeansConfig", "StegoConfig", "PrimapsConfig", "SimclrConfig", "CasConfig"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_the_defaults_pass_their_own_check_and_every_option_is_explained(config: type) -> None:
    defaults = {f.name: getattr(config(), f.name) for f in dataclasses.fields(config)}
    assert make_config(config, "m", defaults) == config()
    helps = option_help(config)
    assert all(helps.get(f.name) for f in dataclasses.fields(config)), helps


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_a_class_count_below_two_is_refused(config: type) -> None:
    if "num_classes" not in {f.name for f in dataclasses.fields(config)}:
        pytest.skip("no class count")
    with pytest.raises(InvalidOptionError, match="num_classes"):
        make_config(config, "m", {"num_classes": 1})


def test_the_encoder_choices_are_the_networks_that_exist() -> None:
    assert set(configs.ENCODER_NAMES) == set(ENCODERS)
    assert set(configs.ENCODER_HEADS) == set(HEADS)
    assert configs.INITS[0] == "cas"  # the paper's start is the default
