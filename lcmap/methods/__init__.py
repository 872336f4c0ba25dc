"""Registry of segmentation methods.

Built-in and third-party methods are declared in the ``lcmap.methods`` entry-point group
(``name = "package.module:builder"``), so names are known without importing torch; a method's
module is imported only when it is requested. :func:`register_method` adds ad-hoc methods
(notebooks, tests) to the same registry.

Example:
    >>> from lcmap.methods import get_method
    >>> method = get_method("kmeans", num_classes=6)
"""

import difflib
import fnmatch
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from lcmap.errors import UnknownMethodError

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


def method_info(name: str) -> "MethodInfo":
    """The :class:`~lcmap.methods.base.MethodInfo` of ``name``, without building the method.

    Looks for the ``Segmenter`` subclass declaring that name in the builder's module.
    """
    import sys

    from lcmap.methods.base import Segmenter

    builder = get_builder(name)
    module = sys.modules[builder.__module__]
    for obj in vars(module).values():
        is_method = isinstance(obj, type) and issubclass(obj, Segmenter) and hasattr(obj, "info")
        if is_method and canonical_name(obj.info.name) == canonical_name(name):
            info: MethodInfo = obj.info
            return info
    raise UnknownMethodError(f"Method '{name}' declares no MethodInfo in {module.__name__}.")


def get_method(name: "str | Segmenter", **kwargs: Any) -> "Segmenter":
    """Build a method by name with keyword options, or pass a built one straight through.

    Options given as None are dropped, so unset CLI flags never override a method's defaults.
    """
    if not isinstance(name, str):
        return name
    options = {k: v for k, v in kwargs.items() if v is not None}
    return get_builder(name)(**options)
