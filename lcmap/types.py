"""Type aliases shared across lcmap (torch-free)."""

from collections.abc import Callable

#: The label value of an unlabelled pixel in label rasters and training batches (also the
#: uint8 nodata of lcmap's maps, see :data:`lcmap.stitch.NODATA`).
UNLABELLED = 255

#: ``(done, total)`` progress callback; the CLI passes a rich progress updater.
ProgressFn = Callable[[int, int], None]


def show_status(progress: ProgressFn | None, text: str) -> None:
    """Show ``text`` (a training loss...) beside the progress bar, when the callback can.

    The CLI's callback has a ``status(text)`` method; a plain ``(done, total)`` function has
    none and the text is dropped, so any callable still works as a progress callback.
    """
    status = getattr(progress, "status", None)
    if callable(status):
        status(text)


def start_phase(progress: ProgressFn | None, name: str) -> None:
    """Start a new phase (``fit``, ``map``, ``write COG``): the CLI shows one bar per phase.

    Uses the callback's ``phase(name)`` method when it has one, like :func:`show_status`.
    """
    phase = getattr(progress, "phase", None)
    if callable(phase):
        phase(name)
