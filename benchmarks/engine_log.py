"""The mapping loop's own figures, read from its log: the batch size it chose from the device's
free memory (CUDA, no ``batch_size`` given) and the share of the loop the model kept the device
busy (:func:`lcmap.engine.map_scene` logs both at INFO)."""

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any


class EngineLog(logging.Handler):
    """Keeps ``lcmap.engine``'s messages; :meth:`figures` parses the last run's."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def figures(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for message in self.messages:
            if hit := re.match(r"batch size (\d+)", message):
                found["auto_batch"] = int(hit[1])
            if hit := re.match(r"model busy (\d+)%", message):
                found["busy_share"] = int(hit[1]) / 100
        return found


@contextlib.contextmanager
def engine_log() -> Iterator[EngineLog]:
    """Collect ``lcmap.engine``'s INFO messages while the block runs."""
    handler, logger = EngineLog(), logging.getLogger("lcmap.engine")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
