"""Fixtures of the metrics and report tests."""

from tests.eval._cases import hand_case

__all__ = ["hand_case"]
