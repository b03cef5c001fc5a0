"""``reference/assignees``: the assignee directory, from the CSV named by ``TOPO_ASSIGNEES_PATH``.

An unpartitioned asset. Materializing it reads and validates the file
(:func:`topo_pipeline.warehouse.assignees.read_assignees`: a bad row fails the run with the
file's line numbers, and the table keeps its previous rows) and replaces
``reference.assignees`` in one transaction. Without the setting it empties the table, so
names and teams are NULL.

The by-assignee and by-team rollups depend on it as well as on ``analytics/task_sla``
(``defs/assets/analytics.py``): after the file changes, materialize this asset and the
downstream automation rebuilds those rollups for every day built so far, in one single-run
backfill (their source, ``analytics.task_sla``, needs no rebuild).

Its check ``assignees_in_directory`` (not blocking) lists the assignees seen in
``topo.tasks`` that the directory does not name.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.failures import explain_user_errors
from topo_pipeline.defs.metadata import markdown_table
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.assignees import (
    AssigneeFileError,
    assignees_missing_from_directory,
    read_assignees,
    replace_assignees,
)

ASSIGNEES_KEY = dg.AssetKey(["reference", "assignees"])

MISSING_CHECK = "assignees_in_directory"

_LISTED = 20
"""Missing assignees named in the check's metadata (the count covers all)."""


def build_assignees_asset(path: Path | None) -> dg.AssetsDefinition:
    """The ``reference/assignees`` asset, reading the directory at ``path`` (``None``: none)."""
    source = str(path) if path is not None else "no file (TOPO_ASSIGNEES_PATH unset)"

    @dg.asset(
        key=ASSIGNEES_KEY,
        pool=POOL,
        kinds={"duckdb", "csv"},
        group_name="reference",
        check_specs=[
            dg.AssetCheckSpec(
                MISSING_CHECK,
                asset=ASSIGNEES_KEY,
                blocking=False,
                description="Every assignee seen in topo.tasks is named in the directory.",
            )
        ],
        metadata={"dagster/table_name": "reference.assignees", "source": source},
        description=(
            "The assignee directory, one row per workspace user (user_id, name, team), "
            f"in DuckDB table reference.assignees, loaded from {source}. Gives the "
            "by-assignee tables their assignee_name and team and the by-team tables their "
            "groups. Materialize it after editing the file."
        ),
    )
    @explain_user_errors("the assignee directory")
    def assignees(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        if path is None:
            people = []
            context.log.info("no assignee directory configured (TOPO_ASSIGNEES_PATH unset)")
        else:
            try:
                people = read_assignees(path)
            except (AssigneeFileError, OSError) as error:
                raise dg.Failure(description=str(error)) from None
        with warehouse.get_connection() as con:
            written = replace_assignees(con, people, loaded_at=datetime.now(UTC))
            missing = assignees_missing_from_directory(con)
        teams = sorted({p.team for p in people if p.team is not None})
        context.log.info(
            "reference.assignees holds %d assignee(s) in %d team(s); %d assignee(s) of "
            "topo.tasks are not in it",
            written,
            len(teams),
            len(missing),
        )
        check = dg.AssetCheckResult(
            check_name=MISSING_CHECK,
            passed=not missing or path is None,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                "no directory configured: names and teams are NULL"
                if path is None
                else f"{len(missing)} assignee(s) of topo.tasks are not in {path}"
            ),
            metadata={
                "missing_assignees": len(missing),
                "missing": dg.MetadataValue.md(
                    markdown_table(
                        ["user_id", "tasks", "last_seen_partition"],
                        [
                            [m.user_id, m.tasks, m.last_seen_partition.isoformat()]
                            for m in missing[:_LISTED]
                        ],
                    )
                ),
            },
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": written,
                "teams": ", ".join(teams) or "-",
                "source": source,
            },
            check_results=[check],
        )

    return assignees
