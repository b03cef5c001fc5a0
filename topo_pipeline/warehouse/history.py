"""``topo.task_history``: every observed version of each task, recorded by the landing.

:func:`record_task_history` runs inside the landing's transaction, after the stage is
attached and before ``topo.tasks`` is replaced, and compares the fetched state of the run's
partitions with their current versions (the rows with ``valid_to`` NULL):

* a task fetched for the first time, fetched with a changed field (one of
  :data:`~topo_pipeline.warehouse.schema.HISTORY_FIELDS`), or fetched again after it was
  removed gets a new version, valid from the landing's ``loaded_at``;
* a task with a current version that Topo no longer returned gets a version with
  ``removed = true`` (its last fields repeated);
* the version each of these replaces gets ``valid_to = loaded_at``;
* an unchanged task gets nothing, so re-fetching an unchanged day adds no rows.

Every statement is set-based and restricted to the run's partitions (the stage, and the
history rows whose ``partition_date`` is one of the run's), so its memory follows the size
of the run, never that of the table. Since it shares the landing's transaction, a landing
that fails leaves the history as it was. A stored task without a current version (a row
written by something other than the landing) first becomes one, valid from its
``loaded_at``; a file migrated from a release without history got every stored task as its
first version (schema version 3).

:func:`history_summary` counts what the table holds as a whole, for the
``topo/task_history`` asset's metadata and check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from topo_pipeline.warehouse.queries import load_sql, render_sql
from topo_pipeline.warehouse.schema import HISTORY_FIELDS
from topo_pipeline.warehouse.tables import identifier

_OBSERVED = "observed_task_versions"
"""The temporary table ``task_history_observe.sql`` fills with a landing's new versions."""


class HistoryOrderError(ValueError):
    """A landing's ``loaded_at`` is earlier than versions already in the history."""


@dataclass(frozen=True)
class HistoryChanges:
    """What one landing added to ``topo.task_history``."""

    versions: int
    """New versions recorded (tasks new, changed, removed or back)."""
    removed: int
    """Of them, versions marking a task Topo no longer returned."""


def record_task_history(
    con: duckdb.DuckDBPyConnection, dates: Sequence[date], loaded_at: datetime
) -> HistoryChanges:
    """Record the versions the attached stage shows for the partitions ``dates``.

    Call it inside the landing's transaction, with the stage attached as ``stage`` and
    before ``topo.tasks`` is replaced (its rows are the stored state).

    Raises:
        HistoryOrderError: if ``loaded_at`` is earlier than the ``valid_from`` of a current
            version of these partitions (a fetch older than what is stored); the caller's
            transaction is to be rolled back.
    """
    params = {"partition_dates": list(dates)}
    fields = ", ".join(identifier(name) for name in HISTORY_FIELDS)
    con.execute(render_sql("task_history_seed_partitions", fields=fields), params)
    (latest,) = con.execute(load_sql("task_history_latest_version"), params).fetchone() or (None,)
    if latest is not None and latest > loaded_at:
        raise HistoryOrderError(
            f"loaded_at {loaded_at.isoformat()} is earlier than the history of these "
            f"partitions (a version valid from {latest.isoformat()}): refusing to record "
            "an older state over a newer one (did the host's clock go back?)"
        )
    con.execute(_observe_sql(), params)
    con.execute(load_sql("task_history_close"), {**params, "loaded_at": loaded_at})
    con.execute(load_sql("task_history_append"), {"loaded_at": loaded_at})
    versions, removed = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE removed) FROM {_OBSERVED}"
    ).fetchone() or (0, 0)
    # On failure the caller's rollback removes it with everything else.
    con.execute(f"DROP TABLE {_OBSERVED}")
    return HistoryChanges(versions=int(versions), removed=int(removed))


@dataclass(frozen=True)
class HistorySummary:
    """What ``topo.task_history`` holds as a whole (the ``topo/task_history`` asset reports it)."""

    versions: int
    """Rows: every version of every task."""
    tasks: int
    """Tasks with a version: one current version (``valid_to`` NULL) each."""
    removed: int
    """Of them, tasks whose current version says Topo no longer returned them."""
    latest_version_at: datetime | None
    """The newest ``valid_from``: the last landing that recorded a change (``None``: empty)."""
    stored_tasks: int
    """Rows of ``topo.tasks``; each should be one current version that is not removed."""

    @property
    def current_match_stored(self) -> bool:
        """Whether the current versions not removed number as many as ``topo.tasks`` rows."""
        return self.tasks - self.removed == self.stored_tasks


def history_summary(con: duckdb.DuckDBPyConnection) -> HistorySummary:
    """Count what ``topo.task_history`` holds, in one pass over it (no hash of its ids)."""
    row = con.execute(load_sql("task_history_summary")).fetchone()
    versions, tasks, removed, latest, stored = row or (0, 0, 0, None, 0)
    return HistorySummary(
        versions=int(versions),
        tasks=int(tasks),
        removed=int(removed),
        latest_version_at=latest,
        stored_tasks=int(stored),
    )


def _observe_sql() -> str:
    changed = " OR ".join(
        f"f.{identifier(name)} IS DISTINCT FROM c.{identifier(name)}" for name in HISTORY_FIELDS
    )
    return render_sql(
        "task_history_observe",
        fetched_fields=", ".join(f"f.{identifier(name)}" for name in HISTORY_FIELDS),
        current_fields=", ".join(f"c.{identifier(name)}" for name in HISTORY_FIELDS),
        changed=f"({changed})",
        latest_arrivals=load_sql("staged_latest_arrivals"),
    )
