"""``topo.pipeline_info``: the one-row table that says what a file holds and how to read it.

An analyst who opens the copy finds there when it was published, the time zone whose
calendar days are the partitions, the SLA targets in force, the first and last partition
present, the task count and the pipeline's version. The table is declared here
(:data:`PIPELINE_INFO`) and created by :mod:`topo_pipeline.warehouse.schema`;
:func:`describe_pipeline` fills its row before each publish and makes every comment about
the time zone name it (``docs/design.md``, "The analyst copy"). Nothing here imports Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb

from topo_pipeline.warehouse.duckdb import CATALOG, transaction
from topo_pipeline.warehouse.queries import load_sql
from topo_pipeline.warehouse.tables import PARTITION_ZONE, Column, Table, identifier, literal

PIPELINE_INFO = Table(
    "topo",
    "pipeline_info",
    "What this file holds and how to read it: one row, refreshed at every publish. "
    f"partition_date everywhere is the day a task was created in {PARTITION_ZONE}.",
    (
        Column(
            "published_at",
            "TIMESTAMPTZ",
            "When this state of the tables was published to the analyst copy (in the "
            "pipeline's own file: its latest publish).",
            not_null=True,
        ),
        Column(
            "partition_timezone",
            "VARCHAR",
            f"The IANA name of {PARTITION_ZONE}, whose calendar days are the partitions: "
            "partition_date is the day a task was created in this zone.",
            not_null=True,
        ),
        Column(
            "sla_target_minutes",
            "MAP(VARCHAR, INTEGER)",
            "SLA target in minutes per priority in force when published "
            "(TOPO_SLA_<PRIORITY>_MINUTES), e.g. sla_target_minutes['HOT']. Each "
            "analytics.task_sla row holds the target it was judged by, which differs for days "
            "built before a change.",
            not_null=True,
        ),
        Column(
            "start_date",
            "DATE",
            "First daily partition the pipeline covers (TOPO_START_DATE).",
            not_null=True,
        ),
        Column(
            "first_partition_date",
            "DATE",
            f"The earliest partition_date in topo.tasks (a day in {PARTITION_ZONE}); NULL if none.",
        ),
        Column(
            "last_partition_date",
            "DATE",
            f"The latest partition_date in topo.tasks (a day in {PARTITION_ZONE}); NULL if none.",
        ),
        Column(
            "partition_days",
            "BIGINT",
            "Distinct partition_date values in topo.tasks (days with at least one task).",
            not_null=True,
        ),
        Column("tasks", "BIGINT", "Rows in topo.tasks.", not_null=True),
        Column(
            "last_loaded_at",
            "TIMESTAMPTZ",
            "The latest topo.tasks.loaded_at: when tasks were last fetched from Topo. NULL when "
            "topo.tasks is empty.",
        ),
        Column(
            "pipeline_version",
            "VARCHAR",
            "Version of the topo_pipeline package that published the file.",
            not_null=True,
        ),
    ),
)

_ZONE_PHRASE = re.compile(
    r"the pipeline's time ?zone(?:, [A-Za-z0-9_+\-/]+)?(?: \(TOPO_TIMEZONE\))?"
)
"""How comments refer to the partition time zone, with or without its name filled in."""

_SCHEMAS = ("topo", "analytics")


@dataclass(frozen=True)
class PipelineInfo:
    """The settings a file is described by (the rest is read from ``topo.tasks``)."""

    timezone: str
    """The partition time zone (``TOPO_TIMEZONE``), an IANA name."""
    start_date: date
    version: str
    sla_target_minutes: Mapping[str, int] = field(default_factory=dict)


def zone_phrase(timezone: str) -> str:
    """How a comment names the partition time zone."""
    return f"the pipeline's time zone, {timezone} (TOPO_TIMEZONE)"


def describe_pipeline(
    con: duckdb.DuckDBPyConnection, info: PipelineInfo, *, published_at: datetime
) -> None:
    """Replace the row of ``topo.pipeline_info`` and state the time zone in every comment.

    One transaction. The file must be at the current schema version
    (:func:`topo_pipeline.warehouse.schema.ensure_schema`).

    Args:
        con: a writable connection from :func:`topo_pipeline.warehouse.duckdb.connect`.
        info: the settings in force.
        published_at: when the publish that follows happens (timezone-aware).

    Raises:
        ValueError: if ``published_at`` is naive.
    """
    if published_at.tzinfo is None:
        raise ValueError("published_at must be timezone-aware")
    with transaction(con):
        con.execute(f"DELETE FROM {PIPELINE_INFO.qualified}")
        con.execute(
            load_sql("insert_pipeline_info"),
            {
                "published_at": published_at,
                "timezone": info.timezone,
                "sla_priorities": list(info.sla_target_minutes),
                "sla_target_minutes": list(info.sla_target_minutes.values()),
                "start_date": info.start_date,
                "version": info.version,
            },
        )
        for statement in _time_zone_comments(con, info.timezone):
            con.execute(statement)


def _time_zone_comments(con: duckdb.DuckDBPyConnection, timezone: str) -> list[str]:
    """``COMMENT ON`` statements naming the zone in comments that mention it."""
    statements = []
    rows = con.execute(load_sql("time_zone_comments"), {"schemas": list(_SCHEMAS)}).fetchall()
    for kind, schema, name, column, comment in rows:
        stated = _ZONE_PHRASE.sub(zone_phrase(timezone), comment or "")
        if stated == (comment or ""):
            continue
        target = f"{CATALOG}.{identifier(schema)}.{identifier(name)}"
        if kind == "COLUMN":
            target = f"{target}.{identifier(column)}"
        statements.append(f"COMMENT ON {kind} {target} IS {literal(stated)}")
    return statements
