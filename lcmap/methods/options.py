"""One option model for every method: a frozen dataclass of options, checked in one place.

A method declares its options once, as a frozen dataclass whose fields are made with
:func:`option` (default, one line of help, range); :func:`make_config` turns keyword options,
strings from ``-p KEY=VALUE`` included, into that dataclass, refusing unknown names (with the
closest one) and values of the wrong kind or out of range with an
:class:`~lcmap.errors.InvalidOptionError`. ``config()`` is the dataclass as a dict, and
``lcmap methods --options`` lists the fields with their help.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class DemoConfig:
    ...     smooth: int = option(1, "local-mean radius in pixels", low=0, high=100)
    >>> make_config(DemoConfig, "demo", {"smooth": "3"}).smooth
    3
"""

import dataclasses
import difflib
import inspect
import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from lcmap.errors import InvalidOptionError

__all__ = ["config_class", "make_config", "option", "option_help", "options_dataclass"]

T = TypeVar("T")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with its help and range: ``low <= value <= high``,
    ``above < value < below``, or one of ``choices``."""
    meta = {
        "help": help,
        "low": low,
        "high": high,
        "above": above,
        "below": below,
        "choices": choices,
    }
    return dataclasses.field(default=default, metadata=meta)


def option_help(config: type) -> dict[str, str]:
    """Field name -> help of an options dataclass."""
    return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(config)}


def make_config(config: type[T], method: str, options: Mapping[str, Any]) -> T:
    """Build the options dataclass ``config`` of ``method`` from keyword options.

    None values keep the default (an unset CLI flag). Strings are converted to the field's
    type; whole-number floats become integers.

    Raises:
        InvalidOptionError: an unknown name, a value of the wrong kind, or out of range.
    """
    hints = typing.get_type_hints(config)
    names = [f.name for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key not in hints:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise InvalidOptionError(
                f"Method '{method}' has no option '{key}'{hint}; its options: {', '.join(names)}."
            )
        if value is not None:
            values[key] = _convert(method, key, value, hints[key])
    made = config(**values)
    for f in dataclasses.fields(made):  # type: ignore[arg-type]
        _check_range(method, f, getattr(made, f.name))
    return made


def _convert(method: str, key: str, value: Any, hint: Any) -> Any:
    optional = type(None) in typing.get_args(hint)
    if optional and isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    kinds = [k for k in (typing.get_args(hint) or (hint,)) if k is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else None
    bad = f"{method} option {key}={value!r}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise InvalidOptionError(f"{bad} must be true or false.")
    if kind in (int, float):
        if isinstance(value, bool):
            raise InvalidOptionError(f"{bad} must be a number, not true or false.")
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            raise InvalidOptionError(
                f"{bad} is not a {'whole ' if kind is int else ''}number."
            ) from None
        if not isinstance(number, int | float) or not math.isfinite(number):
            raise InvalidOptionError(f"{bad} must be a finite number.")
        if kind is int:
            if not float(number).is_integer():
                raise InvalidOptionError(f"{bad} must be a whole number.")
            return int(number)
        return float(number)
    if kind is str and not isinstance(value, str):
        raise InvalidOptionError(f"{bad} must be text.")
    if isinstance(kind, type) and kind not in (str,) and not isinstance(value, kind):
        raise InvalidOptionError(f"{bad} must be a {kind.__name__}.")
    return value


def _check_range(method: str, f: "dataclasses.Field[Any]", value: Any) -> None:
    if value is None:
        return
    low, high = f.metadata.get("low"), f.metadata.get("high")
    above, below = f.metadata.get("above"), f.metadata.get("below")
    choices = f.metadata.get("choices")
    where = f"{method} option {f.name}={value!r}"
    if choices is not None and value not in choices:
        raise InvalidOptionError(f"{where} must be one of {', '.join(map(str, choices))}.")
    if low is not None and high is not None and not low <= value <= high:
        raise InvalidOptionError(f"{where} must be from {low:g} to {high:g}.")
    if low is not None and high is None and not value >= low:
        raise InvalidOptionError(f"{where} must be at least {low:g}.")
    if above is not None and not value > above:
        raise InvalidOptionError(f"{where} must be above {above:g}.")
    if below is not None and not value < below:
        raise InvalidOptionError(f"{where} must be below {below:g}.")


def options_dataclass(cls: type) -> type | None:
    """The options dataclass a method class's constructor takes, if any."""
    for p in inspect.signature(cls.__init__).parameters.values():  # type: ignore[misc]
        if (config := config_class(p.annotation)) is not None:
            return config
    return None


def config_class(annotation: Any) -> type | None:
    """The options dataclass an ``__init__`` parameter is annotated with (``X | None`` too)."""
    for kind in typing.get_args(annotation) or (annotation,):
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            return kind
    return None
