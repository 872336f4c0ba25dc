"""Loading a model file back into the method that wrote it.

The file format (:mod:`lcmap.models`) knows nothing of the methods; this module, on the
methods' floor, rebuilds one from the header's method name and config through the registry.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lcmap.errors import InvalidModelError, InvalidOptionError, LcmapError
from lcmap.methods import get_method, method_info
from lcmap.models import ModelHeader, read_header, read_tensors

if TYPE_CHECKING:
    from lcmap.methods.base import Segmenter


def load_model(
    path: str | Path, overrides: dict[str, Any] | None = None
) -> tuple["Segmenter", ModelHeader]:
    """Rebuild the method stored in ``path``.

    Args:
        path: the model file.
        overrides: options that change how the trained model predicts, e.g.
            ``{"crf": True}``; only its method's ``MethodInfo.apply_options`` are allowed.
            The header returned carries them in its ``config``.

    Raises:
        InputNotFoundError: the file does not exist.
        InvalidModelError: the file is corrupt or its tensors do not fit its method.
        LcmapError: an override is fixed by training (``info.apply_options`` lacks it).
    """
    header = read_header(path)
    started = method_info(header.method).start_options & set(header.config)
    if started:  # the file holds the tensors those options would have read
        header.config = {**header.config, **dict.fromkeys(started)}
    if overrides:
        allowed = method_info(header.method).apply_options
        fixed = sorted(set(overrides) - allowed)
        if fixed:
            can = f"only {', '.join(sorted(allowed))} can" if allowed else "no option can"
            raise LcmapError(
                f"{', '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} fixed when a "
                f"{header.method} model is trained, and {path} has its own; {can} be given "
                "with model=... Train a new model to change the others."
            )
        header.config = {**header.config, **overrides}
    state = read_tensors(path)
    try:
        method = get_method(header.method, **header.config)
    except (TypeError, ValueError) as exc:
        from_the_file = isinstance(exc, InvalidOptionError) or not isinstance(exc, LcmapError)
        if not from_the_file:
            raise
        if not overrides:
            raise InvalidModelError(f"{path}: its config does not fit its method ({exc}).") from exc
        raise LcmapError(f"{exc} (given as model={path}).") from exc
    try:
        method.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InvalidModelError(
            f"{path}: tensors do not fit method '{header.method}' ({exc})."
        ) from exc
    relabel = header.extra.get("classes", {}).get("relabel")
    method.relabel = [int(v) for v in relabel] if relabel is not None else None
    method.class_names = list(header.class_names)
    method.colours = [(int(r), int(g), int(b)) for r, g, b in header.colours]
    return method, header
