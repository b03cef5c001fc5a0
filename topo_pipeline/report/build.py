"""Build the report from a published DuckDB file and write it atomically.

:func:`write_report` reads the analyst copy (read-only, so it never blocks the pipeline),
renders the page and puts it in place with :func:`os.replace`: the file is written beside
the target under a hidden temporary name, flushed, then renamed over it, so a reader never
sees half a page. The window of changes the page it replaces showed is read from that page
first (:class:`~topo_pipeline.report.changes.ChangesWindow`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from topo_pipeline.report.changes import ChangesWindow
from topo_pipeline.report.data import ReportData, load_report_data
from topo_pipeline.report.headlines import Headline, headlines
from topo_pipeline.report.page import render_page
from topo_pipeline.warehouse.business_hours import WorkingCalendar
from topo_pipeline.warehouse.duckdb import DEFAULT_LOCK_TIMEOUT_SECONDS, connect

PREVIOUS_HEAD_BYTES = 16_384
"""How much of the previous page is read for its changes window (it sits in ``<head>``)."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    size_bytes: int
    data: ReportData
    headlines: tuple[Headline, ...]


def write_report(
    source: str | Path,
    target: str | Path,
    *,
    now: datetime | None = None,
    business_hours: str | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> ReportResult:
    """Write the SLA report of ``source`` (the analyst copy) to ``target``, atomically.

    Args:
        source: a published DuckDB file (``TOPO_ANALYST_DUCKDB_PATH``).
        target: the HTML file to create or replace (``TOPO_REPORT_PATH``); its folder is
            created if needed.
        now: when the report is made (default: now).
        business_hours: the business hours in force, described; ``None``: not configured.
        lock_timeout: seconds to wait while another process holds ``source`` for writing.

    Raises:
        FileNotFoundError: if ``source`` does not exist (nothing was published yet).
        ReportError: if ``source`` has no ``topo.pipeline_info`` (never published).
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(
            f"the analyst copy {source} does not exist yet: publish it first (materialize "
            "publish/analyst_copy, or run make demo)"
        )
    previous = previous_window(target)
    with connect(source, read_only=True, lock_timeout=lock_timeout) as con:
        data = load_report_data(
            con, now=now or datetime.now(UTC), business_hours=business_hours, previous=previous
        )
    window = data.changes.window
    page = render_page(data, meta=window.meta_tags() if window else "").encode()
    write_atomically(target, page)
    return ReportResult(target, len(page), data, headlines(data))


def describe_business_hours(calendar: WorkingCalendar | None, timezone: str) -> str | None:
    """The business hours in force as the report states them; ``None``: not configured."""
    return f"{calendar.describe()}, {timezone}" if calendar is not None else None


def previous_window(target: Path) -> ChangesWindow | None:
    """The changes window recorded in the report at ``target``; ``None`` if none is."""
    try:
        with target.open("rb") as page:
            head = page.read(PREVIOUS_HEAD_BYTES)
    except FileNotFoundError:
        return None
    return ChangesWindow.from_html(head.decode(errors="replace"))


def write_atomically(target: Path, content: bytes) -> None:
    """Replace ``target`` with ``content`` in one rename (see the module)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with building.open("xb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(building, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            building.unlink()
