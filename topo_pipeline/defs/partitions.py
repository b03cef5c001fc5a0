"""Daily partitions on the task's creation day, in the configured timezone."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.tasks import PartitionWindow


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per calendar day of ``TOPO_TIMEZONE`` from ``TOPO_START_DATE``.

    The last partition is the last *complete* day: a day is only fetched once it ended.
    """
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone
    )


def partition_windows(
    partitions_def: dg.TimeWindowPartitionsDefinition, keys: Sequence[str]
) -> list[PartitionWindow]:
    """The created-at window of each partition key: ``[day start, next day start)``.

    Windows come from Dagster's own partition arithmetic, so a DST day is 23 or 25 hours.
    """
    windows = []
    for key in keys:
        window = partitions_def.time_window_for_partition_key(key)
        windows.append(
            PartitionWindow(partition_date=window.start.date(), start=window.start, end=window.end)
        )
    return windows
