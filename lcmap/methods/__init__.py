"""Registry of segmentation methods.

Built-in and third-party methods are declared in the ``lcmap.methods`` entry-point group
(``name = "package.module:builder"``), so names are known without importing torch; a method's
module is imported only when it is requested. :func:`register_method` adds ad-hoc methods
(notebooks, tests) to the same registry.

Example:
    >>> from lcmap.methods import get_method
    >>> method = get_method("kmeans", num_classes=6)
"""

import dataclasses
import difflib
import fnmatch
import inspect
import math
import typing
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from lcmap.errors import InvalidOptionError, UnknownMethodError
from lcmap.methods.options import config_class, option_help

if TYPE_CHECKING:
    from lcmap.methods.base import MethodInfo, Segmenter

ENTRY_POINT_GROUP = "lcmap.methods"

Builder = Callable[..., "Segmenter"]
_B = TypeVar("_B", bound=Builder)
_registered: dict[str, Builder] = {}


def canonical_name(name: str) -> str:
    """Return the registry key for ``name``: CLI spellings with hyphens map to underscores."""
    return name.strip().lower().replace("-", "_")


def register_method(name: str) -> Callable[[_B], _B]:
    """Register a builder under ``name`` (a decorator)."""

    def decorate(builder: _B) -> _B:
        _registered[canonical_name(name)] = builder
        return builder

    return decorate


def _entry_points() -> dict[str, Any]:
    return {canonical_name(ep.name): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def list_methods(pattern: str = "*") -> list[str]:
    """Names of the available methods matching an fnmatch ``pattern``, sorted."""
    names = set(_entry_points()) | set(_registered)
    return sorted(n for n in names if fnmatch.fnmatch(n, canonical_name(pattern)))


def get_builder(name: str) -> Builder:
    """Return the builder registered as ``name``.

    Raises:
        UnknownMethodError: no such method; the message suggests close names.
    """
    key = canonical_name(name)
    if key in _registered:
        return _registered[key]
    eps = _entry_points()
    if key in eps:
        builder: Builder = eps[key].load()
        return builder
    available = list_methods()
    close = difflib.get_close_matches(key, available, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UnknownMethodError(
        f"Unknown method '{name}'.{hint} Available: {', '.join(available) or 'none'}."
    )


def _method_class(name: str) -> "type[Segmenter] | None":
    """The ``Segmenter`` subclass whose ``build`` is registered as ``name``, or that declares
    ``name`` in its builder's module, if any."""
    import sys

    from lcmap.methods.base import Segmenter

    builder = get_builder(name)
    owner = getattr(builder, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, Segmenter):
        return owner
    module = sys.modules[builder.__module__]
    for obj in vars(module).values():
        is_method = isinstance(obj, type) and issubclass(obj, Segmenter) and hasattr(obj, "info")
        if is_method and canonical_name(obj.info.name) == canonical_name(name):
            found: type[Segmenter] = obj
            return found
    return None


def method_info(name: str) -> "MethodInfo":
    """The :class:`~lcmap.methods.base.MethodInfo` of ``name``, without building the method.

    Looks for the ``Segmenter`` subclass declaring that name in the builder's module.
    """
    cls = _method_class(name)
    if cls is None:
        module = get_builder(name).__module__
        raise UnknownMethodError(f"Method '{name}' declares no MethodInfo in {module}.")
    return cls.info


def fewshot_methods() -> list[str]:
    """Methods whose models provide an encoder for few-shot learning
    (:class:`lcmap.methods.fewshot.FewShotEncoder`: ``lcmap finetune``, ``suggest-labels``)."""
    found = []
    for name in list_methods():
        cls = _method_class(name)
        if cls is not None and callable(getattr(cls, "fewshot_inits", None)):
            found.append(name)
    return found


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown option names and non-finite or fractional numbers, for any method.

    The names a method takes are its options dataclass's fields or, for a plug-in without one,
    its constructor's parameters (one that takes ``**kwargs`` checks unknown names itself).
    Built-in methods check values again, with their ranges, in
    :func:`lcmap.methods.options.make_config`. Whole-number floats given for an integer option
    (``-p samples=1e5``) become integers.

    Raises:
        InvalidOptionError: an unknown name (with the closest one and the list of valid
            names), a value of the wrong kind, infinity or NaN.
    """
    cls = _method_class(name)
    if cls is None:
        return options
    params, takes_any = _option_types(cls)
    out = dict(options)
    for key, value in options.items():
        param = params.get(key)
        if param is None:
            if takes_any:
                continue
            close = difflib.get_close_matches(key, params, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise InvalidOptionError(
                f"Method '{name}' has no option '{key}'{hint}; its options: "
                f"{', '.join(sorted(params))}."
            )
        kinds = _kinds(param)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidOptionError(f"{name} option {key}={value} must be a finite number.")
        if isinstance(value, float) and int in kinds and float not in kinds:
            if not value.is_integer():
                raise InvalidOptionError(f"{name} option {key}={value} must be a whole number.")
            out[key] = int(value)
    return out


def _option_types(cls: type) -> tuple[dict[str, Any], bool]:
    """Option name -> annotation of a method class, and whether it takes ``**kwargs``.

    The constructor's parameters; a parameter annotated with a dataclass (a config object
    such as ``SingleSceneConfig``) contributes that dataclass's fields instead.
    """
    params: dict[str, Any] = {}
    takes_any = False
    for n, p in inspect.signature(cls.__init__).parameters.items():  # type: ignore[misc]
        if n == "self":
            continue
        if p.kind == p.VAR_KEYWORD:
            takes_any = True
        elif (config := config_class(p.annotation)) is not None:
            params.update(typing.get_type_hints(config))
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            params[n] = p.annotation
    return params, takes_any


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option of a method, as ``lcmap methods --options`` lists it."""

    name: str
    type: str
    default: Any
    help: str


def method_options(name: str) -> list[OptionSpec]:
    """The options of a method: name, type, default and one line of help.

    From the same place :func:`check_options` reads: the constructor's parameters (or its
    options dataclass's fields), their defaults, and their help (the fields' own, see
    :func:`lcmap.methods.options.option`, or a plug-in's docstring ``Args:`` entries).
    """
    cls = _method_class(name)
    if cls is None:
        return []
    types, _ = _option_types(cls)
    defaults: dict[str, Any] = {}
    helps = _docstring_args(cls.__doc__ or "")
    for n, p in inspect.signature(cls.__init__).parameters.items():
        config = config_class(p.annotation)
        if config is not None:
            defaults.update({f.name: f.default for f in dataclasses.fields(config)})
            helps.update({k: v for k, v in option_help(config).items() if v})
        elif p.default is not p.empty:
            defaults[n] = p.default
    return [
        OptionSpec(n, _type_name(t), defaults.get(n), helps.get(n, ""))
        for n, t in types.items()
        if n != "self"
    ]


def _type_name(annotation: Any) -> str:
    names = [getattr(k, "__name__", str(k)) for k in _kinds(annotation)]
    return " | ".join(sorted(n.replace("NoneType", "None") for n in names))


def _docstring_args(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Args:`` section (first line of each)."""
    import re

    found: dict[str, str] = {}
    section = re.split(r"\n\s*Args:\s*\n", doc, maxsplit=1)
    if len(section) < 2:
        return found
    for line in section[1].splitlines():
        entry = re.match(r"\s{4,8}([a-z_][a-z0-9_, ]*):\s*(.*)", line)
        if entry:
            for key in entry.group(1).split(","):
                found[key.strip()] = entry.group(2).strip()
    return found


def _kinds(annotation: Any) -> set[Any]:
    """The plain types an annotation admits (``int | None`` -> {int, NoneType})."""
    args = typing.get_args(annotation)
    return set(args) if args else {annotation}


def get_method(name: "str | Segmenter", **kwargs: Any) -> "Segmenter":
    """Build a method by name with keyword options, or pass a built one straight through.

    Options given as None are dropped, so unset CLI flags never override a method's defaults.
    Option names and numbers are checked first (:func:`check_options`).
    """
    if not isinstance(name, str):
        return name
    options = {k: v for k, v in kwargs.items() if v is not None}
    return get_builder(name)(**check_options(name, options))
