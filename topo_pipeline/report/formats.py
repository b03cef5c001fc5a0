"""How the report writes values: times in the pipeline's zone, ids, durations, tables.

Every value that comes from the data is HTML-escaped here or by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

NONE = "\u2013"
"""How an empty value shows (an en dash)."""


def local_time(value: datetime | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """``2026-12-07 21:56 CET``: an instant in the pipeline's time zone."""
    if value is None:
        return NONE
    return value.astimezone(zone).strftime(f"%Y-%m-%d %H:%M{':%S' if seconds else ''} %Z")


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Iterable[int] = (),
    html_cells: bool = False,
) -> str:
    """An HTML table; cells are escaped unless ``html_cells`` (already escaped)."""
    right = set(numeric)
    head = "".join(
        f"<th{' class=num' if i in right else ''}>{escape(c)}</th>" for i, c in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = "".join(
            f"<td{' class=num' if i in right else ''}>{c if html_cells else escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def cell(value: object, zone: ZoneInfo) -> str:
    """A value of a listed row as HTML: ids shortened, times local, numbers grouped."""
    if value is None:
        return NONE
    if isinstance(value, str) and _UUID.fullmatch(value):
        return short_id(value)
    if isinstance(value, timedelta):
        return escape(duration(value))
    if isinstance(value, datetime):
        return escape(local_time(value, zone))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def duration(value: timedelta) -> str:
    """``2 d 3 h``, ``3 h 12 min``, ``12 min``; ``due in 8 min`` when negative."""
    minutes = round(value.total_seconds() / 60)
    if minutes < 0:
        return "due in " + duration(-value)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def short_id(value: str) -> str:
    """A UUID shortened to its first block, the whole of it in the tooltip."""
    return f'<code title="{escape(value)}">{escape(value[:8])}</code>'


def person(name: str | None, user_id: str | None) -> str:
    """An assignee by name, else by shortened id, else ``(unassigned)``."""
    if name:
        return escape(name)
    return short_id(user_id) if user_id else "(unassigned)"


def count(value: int) -> str:
    """``1,234``."""
    return f"{value:,}"


def minutes_text(minutes: int) -> str:
    """An SLA target as people say it: ``1 hour``, ``3 days``, ``90 min``."""
    if minutes % 1440 == 0:
        days = minutes // 1440
        return f"{days} day{'s' if days > 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours > 1 else ''}"
    return f"{minutes} min"
