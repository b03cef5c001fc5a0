"""``analytics.builds``: the settings each build of the analytics tables ran with.

Every build rebuilds its tables whole, so the latest row describes every row they hold; the
earlier rows tell the builds of the published copies apart. :func:`record_build` adds the
row and says which result-changing setting differs from the previous build's (the run log
prints it). Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from topo_pipeline.warehouse.duckdb import transaction
from topo_pipeline.warehouse.queries import render_sql
from topo_pipeline.warehouse.tables import Column, Table

BUILDS = Table(
    "analytics",
    "builds",
    "One row per build of the analytics tables, with the settings it ran with. Each build "
    "rebuilds its tables whole: the latest row describes every row they hold.",
    (
        Column("built_at", "TIMESTAMPTZ", "When the build ran.", not_null=True),
        Column("as_of", "TIMESTAMPTZ", "The instant open tasks were judged against."),
        Column(
            "partition_timezone",
            "VARCHAR",
            "The IANA time zone the build ran with, whose calendar days partition_date holds.",
            not_null=True,
        ),
        Column(
            "sla_target_minutes",
            "MAP(VARCHAR, INTEGER)",
            "SLA target in minutes per priority (TOPO_SLA_<PRIORITY>_MINUTES).",
            not_null=True,
        ),
        Column(
            "business_hours",
            "VARCHAR",
            "The working calendar of the business-hours columns (TOPO_BUSINESS_HOURS and "
            "the number of TOPO_HOLIDAYS_PATH holidays); NULL: not configured, those "
            "columns are NULL.",
        ),
        Column(
            "assignees_in_directory",
            "INTEGER",
            "Rows of reference.assignees the names and teams came from.",
            not_null=True,
        ),
        Column("tables", "VARCHAR[]", "The analytics tables the build rebuilt.", not_null=True),
    ),
)


@dataclass(frozen=True)
class BuildSettings:
    """The settings that change what the analytics tables hold."""

    timezone: str
    sla_target_minutes: Mapping[str, int]
    business_hours: str | None

    def changes_since(self, previous: BuildSettings | None) -> list[str]:
        """What differs from ``previous``, one phrase per setting (none for a first build)."""
        if previous is None:
            return []
        changes = []
        if self.timezone != previous.timezone:
            changes.append(f"TOPO_TIMEZONE {previous.timezone} -> {self.timezone}")
        if dict(self.sla_target_minutes) != dict(previous.sla_target_minutes):
            changes.append(
                f"SLA targets {_targets(previous.sla_target_minutes)} -> "
                f"{_targets(self.sla_target_minutes)}"
            )
        if self.business_hours != previous.business_hours:
            changes.append(
                f"business hours {previous.business_hours or 'not configured'} -> "
                f"{self.business_hours or 'not configured'}"
            )
        return changes


def record_build(
    con: duckdb.DuckDBPyConnection,
    settings: BuildSettings,
    *,
    built_at: datetime,
    as_of: datetime | None,
    tables: Sequence[str],
) -> list[str]:
    """Add the build's row to ``analytics.builds``; return what changed since the last one.

    Run it after the build, on a file whose schema is current.
    """
    previous = latest_build(con)
    with transaction(con):
        con.execute(
            render_sql("insert_build", table=BUILDS.qualified),
            {
                "built_at": built_at,
                "as_of": as_of,
                "timezone": settings.timezone,
                "priorities": list(settings.sla_target_minutes),
                "minutes": list(settings.sla_target_minutes.values()),
                "business_hours": settings.business_hours,
                "tables": list(tables),
            },
        )
    return settings.changes_since(previous)


def latest_build(con: duckdb.DuckDBPyConnection) -> BuildSettings | None:
    """The settings of the latest build recorded, or ``None`` before the first."""
    row = con.execute(render_sql("latest_build", table=BUILDS.qualified)).fetchone()
    if row is None:
        return None
    timezone, targets, business_hours = row
    return BuildSettings(timezone, dict(targets), business_hours)


def _targets(targets: Mapping[str, int]) -> str:
    return ", ".join(f"{priority} {minutes}" for priority, minutes in targets.items())
