"""``lcmap.io.cog_options``: a label map takes only lossless codecs and label-safe overviews."""

import pytest

from lcmap.errors import InvalidOptionError
from lcmap.io.cog_options import DEFAULT_CREATION_OPTIONS, check_creation_options


def test_creation_options_are_upper_cased_and_checked() -> None:
    assert check_creation_options({"compress": "zstd", "blocksize": "256"}) == {
        "COMPRESS": "zstd",
        "BLOCKSIZE": "256",
    }
    for bad in ({"BLOCKSIZE": "100"}, {"COMPRESS": "WEBP"}, {"LEVEL": "x"}, {"FOO": "1"}):
        with pytest.raises(InvalidOptionError):
            check_creation_options(bad)


@pytest.mark.parametrize(
    "option",
    [
        {"COMPRESS": "LERC", "MAX_Z_ERROR": "2"},  # an error bound rounds labels away
        {"COMPRESS": "JPEG"},
        {"OVERVIEW_RESAMPLING": "AVERAGE"},  # invents classes no pixel below has
        {"OVERVIEW_RESAMPLING": "CUBIC"},
        {"LEVEL": "99"},
        {"NUM_THREADS": "100000"},
        {"OVERVIEW_COUNT": "1000"},
    ],
)
def test_what_would_change_labels_or_is_out_of_range_is_refused(option) -> None:
    with pytest.raises(InvalidOptionError):
        check_creation_options(option)


def test_the_defaults_pass_their_own_check() -> None:
    assert check_creation_options(DEFAULT_CREATION_OPTIONS) == {
        k.upper(): v for k, v in DEFAULT_CREATION_OPTIONS.items()
    }
