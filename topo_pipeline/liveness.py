"""Is the process that left something behind still alive?

A process is named by its id *and* the moment it started, since ids are reused:
:func:`current_owner` is this process's :class:`Owner`, :meth:`Owner.token` writes it into
a file name, :func:`parse_owner` reads it back, and :func:`is_alive` answers for that exact
process. The answer holds for processes on this machine only; on Linux the start time comes
from ``/proc``, elsewhere only the id is checked (``docs/design.md``, "Dead runs").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PROC = Path("/proc")
_TOKEN = re.compile(r"p(\d+)t(\d+)")


@dataclass(frozen=True)
class Owner:
    """A process: its id and its start time in clock ticks since boot (0 when unknown)."""

    pid: int
    start_ticks: int

    def token(self) -> str:
        """The owner as a file-name fragment, e.g. ``p4242t1234567``."""
        return f"p{self.pid}t{self.start_ticks}"


def current_owner() -> Owner:
    """This process."""
    return owner_of(os.getpid()) or Owner(os.getpid(), 0)


def owner_of(pid: int) -> Owner | None:
    """Process ``pid`` as an :class:`Owner`, or ``None`` if there is no such process."""
    if _PROC.is_dir():
        ticks = _start_ticks(pid)
        return Owner(pid, ticks) if ticks is not None else None
    return Owner(pid, 0) if is_alive(Owner(pid, 0)) else None


def parse_owner(text: str) -> Owner | None:
    """The owner whose :meth:`Owner.token` starts ``text`` (part of a file name), if any."""
    match = _TOKEN.match(text)
    return Owner(int(match[1]), int(match[2])) if match else None


def is_alive(owner: Owner) -> bool:
    """True while ``owner`` runs: the id exists, is not a zombie, and started when it did."""
    if owner.pid <= 0:
        return False
    if _PROC.is_dir():
        stat = _stat_fields(owner.pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return owner.start_ticks == 0 or int(stat[19]) == owner.start_ticks
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive_since(pid: int, since: float) -> bool:
    """True if process ``pid`` is alive and was already running at ``since`` (epoch seconds).

    A process with that id that started after ``since`` is another one that reused the
    id. Allows a second of slack for the coarse boot time in ``/proc/stat``.
    """
    if not is_alive(Owner(pid, 0)):
        return False
    started = process_start_time(pid)
    return started is None or started <= since + 1.0


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started, in epoch seconds (``None`` where ``/proc`` is missing)."""
    ticks = _start_ticks(pid)
    boot = _boot_time()
    if ticks is None or boot is None:
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _start_ticks(pid: int) -> int | None:
    stat = _stat_fields(pid)
    return int(stat[19]) if stat is not None else None


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from the state field on (the command name may hold spaces)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


@cache
def _boot_time() -> float | None:
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None
