"""``reference/assignees``: the assignee directory, from the CSV named by ``TOPO_ASSIGNEES_PATH``.

An unpartitioned asset: materializing it replaces ``reference.assignees`` in one transaction,
as :func:`~topo_pipeline.warehouse.reference.plan_reference_load` decides. A source that is
unset, missing or empty keeps a loaded directory as it is (a warning, a failed
``directory_source_present`` check, and no new materialization, so nothing downstream is
rebuilt); a bad file fails the run with its line numbers; run config ``clear: true`` empties
the table. The by-assignee and by-team rollups depend on it. Its check
``assignees_in_directory`` (not blocking) lists the assignees of ``topo.tasks`` the
directory does not name. More: ``docs/operating.md``, "The assignee directory".
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from topo_pipeline.defs.assets.ingestion import POOL
from topo_pipeline.defs.failures import user_errors
from topo_pipeline.defs.metadata import markdown_table
from topo_pipeline.defs.resources import WarehouseResource
from topo_pipeline.warehouse.assignees import (
    MissingAssignee,
    assignees_missing_from_directory,
    loaded_assignees,
    read_assignee_source,
    replace_assignees,
)
from topo_pipeline.warehouse.reference import LoadAction, ReferencePlan, plan_reference_load

ASSIGNEES_KEY = dg.AssetKey(["reference", "assignees"])

MISSING_CHECK = "assignees_in_directory"

SOURCE_CHECK = "directory_source_present"

TABLE_NAME = "reference.assignees"

_LISTED = 20
"""Missing assignees named in the check's metadata (the count covers all)."""


class AssigneesConfig(dg.Config):
    """Run config of ``reference/assignees`` (``ops: reference__assignees: config:``)."""

    clear: bool = Field(
        default=False,
        description=(
            "Empty reference.assignees, whatever TOPO_ASSIGNEES_PATH holds. Without it, a "
            "source that is unset, missing or empty keeps the rows loaded earlier."
        ),
    )


def build_assignees_asset(path: Path | None) -> dg.AssetsDefinition:
    """The ``reference/assignees`` asset, reading the directory at ``path`` (``None``: none)."""
    source_label = str(path) if path is not None else "no file (TOPO_ASSIGNEES_PATH unset)"
    setting = "TOPO_ASSIGNEES_PATH" if path is None else f"TOPO_ASSIGNEES_PATH ({path})"

    @dg.asset(
        key=ASSIGNEES_KEY,
        pool=POOL,
        kinds={"duckdb", "csv"},
        group_name="reference",
        # A directory kept as it was is not a new materialization (see the module).
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                MISSING_CHECK,
                asset=ASSIGNEES_KEY,
                blocking=False,
                description="Every assignee seen in topo.tasks is named in the directory.",
            ),
            dg.AssetCheckSpec(
                SOURCE_CHECK,
                asset=ASSIGNEES_KEY,
                blocking=False,
                description=(
                    "The directory's source (TOPO_ASSIGNEES_PATH) is set and has rows. Warns "
                    "when a source that is missing, empty or bad left the loaded directory "
                    "as it was (metadata: rows_kept), or a file set is missing or empty."
                ),
            ),
        ],
        metadata={"dagster/table_name": TABLE_NAME, "source": source_label},
        description=(
            "The assignee directory, one row per workspace user (user_id, name, team), "
            f"in DuckDB table {TABLE_NAME}, loaded from {source_label}. Gives the "
            "by-assignee tables their assignee_name and team and the by-team tables their "
            "groups. Materialize it after editing the file. A source that is unset, missing "
            "or empty keeps the rows loaded earlier; run config clear: true empties it."
        ),
    )
    def assignees(
        context: dg.AssetExecutionContext, config: AssigneesConfig, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with user_errors("the assignee directory"):
            source = read_assignee_source(path)
            with warehouse.get_connection() as con:
                plan = plan_reference_load(
                    source.state,
                    loaded_assignees(con),
                    clear=config.clear,
                    table=TABLE_NAME,
                    setting=setting,
                )
                (context.log.warning if plan.warn else context.log.info)(plan.message)
                source_check = _source_check(plan, source.state.value, source_label)
                if plan.action is LoadAction.FAIL:
                    yield source_check
                    raise dg.Failure(
                        description=(
                            f"The assignee directory failed: {source.problem}. {plan.message}."
                        ),
                        metadata={"rows_kept": plan.rows_kept},
                    )
                people = source.assignees if plan.action is LoadAction.REPLACE else []
                if plan.action is not LoadAction.KEEP:
                    replace_assignees(con, people, loaded_at=datetime.now(UTC))
                held = loaded_assignees(con)
                missing = assignees_missing_from_directory(con)
            missing_check = _missing_check(missing, held)
            if plan.action is LoadAction.KEEP:
                yield source_check
                yield missing_check
                return
            teams = sorted({p.team for p in people if p.team is not None})
            context.log.info(
                "%s holds %d assignee(s) in %d team(s); %d assignee(s) of topo.tasks are not in it",
                TABLE_NAME,
                held,
                len(teams),
                len(missing),
            )
            yield dg.MaterializeResult(
                metadata={
                    "dagster/row_count": held,
                    "teams": ", ".join(teams) or "-",
                    "source": source_label,
                    "action": plan.action.value,
                },
                check_results=[source_check, missing_check],
            )

    return assignees


def _source_check(plan: ReferencePlan, state: str, source_label: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=SOURCE_CHECK,
        asset_key=ASSIGNEES_KEY,
        passed=not plan.warn,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{plan.message}.",
        metadata={
            "source": source_label,
            "source_state": state,
            "action": plan.action.value,
            "rows_kept": plan.rows_kept,
        },
    )


def _missing_check(missing: list[MissingAssignee], held: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=MISSING_CHECK,
        asset_key=ASSIGNEES_KEY,
        passed=not missing or held == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"no directory loaded ({TABLE_NAME} is empty): names and teams are NULL"
            if held == 0
            else f"{len(missing)} assignee(s) of topo.tasks are not in {TABLE_NAME}"
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
