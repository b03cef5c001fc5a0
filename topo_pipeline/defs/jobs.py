"""Jobs that refresh ``topo/tasks`` partitions together with everything downstream of them.

The daily schedule and the open-task sensor both launch :data:`REFRESH_JOB_NAME`. Its
selection is ``topo/tasks`` plus every asset downstream of it (the ``analytics/*`` tables,
whatever is wired into the code location), so a refreshed partition's analytics are
rebuilt in the same run, for every partition of the run, not only the latest one.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg

from topo_pipeline.defs.assets.ingestion import TASKS_KEY

if TYPE_CHECKING:
    # What define_asset_job returns; Dagster does not export the name.
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

REFRESH_JOB_NAME = "topo_refresh_job"
"""Job: ``topo/tasks`` and everything downstream of it, for one partition or a range."""

REFRESH_SELECTION = dg.AssetSelection.assets(TASKS_KEY).downstream()
"""``topo/tasks`` and every asset downstream of it."""

DOWNSTREAM_SELECTION = dg.AssetSelection.assets(TASKS_KEY).downstream(include_self=False)
"""Every asset downstream of ``topo/tasks`` (the analytics tables), without it."""

# Dagster's documented run tags for a run over a range of partitions. Assets with a
# single-run backfill policy (all of ours) materialize the whole range in one run.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def build_refresh_job() -> "UnresolvedAssetJobDefinition":
    """The :data:`REFRESH_JOB_NAME` job over :data:`REFRESH_SELECTION`."""
    return dg.define_asset_job(
        REFRESH_JOB_NAME,
        selection=REFRESH_SELECTION,
        description=(
            "Fetch topo/tasks for a partition (or a range of partitions, in one run) and "
            "rebuild every asset downstream of it for the same partitions. Launched by "
            "the daily refresh schedule and the open-task sensor."
        ),
    )


def partition_range_tags(first: str, last: str) -> Mapping[str, str]:
    """Run tags that make one run cover the partitions ``first..last`` (inclusive)."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}
