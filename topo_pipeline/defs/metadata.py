"""Small helpers that turn query results into Dagster UI metadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PER_DAY_ROWS = 62
"""Most days a range run's ``per_day`` overview lists (it goes on the run's last day)."""


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table of ``rows`` under ``columns``; ``(no rows)`` when there are none.

    ``None`` shows as an empty cell, and ``|`` inside a value is escaped so it cannot
    break the table.
    """
    lines = [_row(columns), _row(["---"] * len(columns))]
    lines.extend(_row(["" if value is None else str(value) for value in row]) for row in rows)
    if len(lines) == 2:
        return "(no rows)"
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
