"""Type aliases shared across lcmap (torch-free)."""

from collections.abc import Callable

#: ``(done, total)`` progress callback; the CLI passes a rich progress updater.
ProgressFn = Callable[[int, int], None]
