"""The job that refreshes ``topo/tasks`` partitions with everything downstream of them.

The daily schedule, the open-task sensor and the live refresh of today all launch
:data:`REFRESH_JOB_NAME`: ``topo/tasks`` for a partition or a range, ``topo/task_history``,
the ``analytics/*`` tables (the SLA notifications included) and the analyst copy, in one run.
"""

from collections.abc import Mapping

import dagster as dg

from topo_pipeline.defs.assets.ingestion import TASKS_KEY

REFRESH_JOB_NAME = "topo_refresh_job"
"""Job: ``topo/tasks`` and everything downstream of it, for one partition or a range."""

REFRESH_SELECTION = dg.AssetSelection.assets(TASKS_KEY).downstream()
"""``topo/tasks`` and every asset downstream of it."""

DOWNSTREAM_SELECTION = dg.AssetSelection.assets(TASKS_KEY).downstream(include_self=False)
"""Every asset downstream of ``topo/tasks`` (its history, the analytics tables), without it."""

# Dagster's documented run tags for a run over a range of partitions. Assets with a
# single-run backfill policy (all of ours) materialize the whole range in one run.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


CONSOLE_PARAGRAPHS = {"loggers": {"console": {}}}
"""Run config of the project's jobs: the code location's console logger, which prints an
error a user causes as its paragraph (``defs/console.py``; Dagster uses a logger of the
code location only where run config names it)."""

REFRESH_JOB = dg.define_asset_job(
    REFRESH_JOB_NAME,
    selection=REFRESH_SELECTION,
    config=CONSOLE_PARAGRAPHS,
    description=(
        "Fetch topo/tasks for a partition (or a range of partitions, in one run), rebuild "
        "every table downstream of it and publish the analyst copy. Launched by the daily "
        "refresh schedule, the open-task sensor and the live refresh of today."
    ),
)
"""The :data:`REFRESH_JOB_NAME` job over :data:`REFRESH_SELECTION`."""


def partition_range_tags(first: str, last: str) -> Mapping[str, str]:
    """Run tags that make one run cover the partitions ``first..last`` (inclusive)."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}
