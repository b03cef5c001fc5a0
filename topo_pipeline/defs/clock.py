"""The time sensors decide with; tests pass a fixed one."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time (aware)."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
