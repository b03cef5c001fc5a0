"""Daily partitions on the task's creation day, in the configured timezone.

The partitions run from ``TOPO_START_DATE`` to **today**, the day in progress
(``end_offset=1``), so the live refresh can fetch it. Code that means "the days that have
ended" (the daily schedule, the freshness checks) asks :func:`complete_partition_keys`,
never for the last partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from topo_pipeline.settings import Settings
from topo_pipeline.warehouse.tasks import PartitionWindow

DAY_COMPLETE_METADATA = "day_complete"
"""Metadata of each ``topo/tasks`` partition materialization: ``true`` when the fetch started
after the day ended, ``false`` for a refresh of the day in progress (the live refresh)."""


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """One partition per calendar day of ``TOPO_TIMEZONE`` from ``TOPO_START_DATE`` to today.

    Today's partition exists while the day is in progress; it is complete once it ended.
    """
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone=settings.timezone, end_offset=1
    )


def complete_partition_keys(
    partitions_def: dg.TimeWindowPartitionsDefinition, now: datetime
) -> list[str]:
    """The partition keys whose day had ended at ``now`` (its end at or before ``now``).

    Whatever the definition's ``end_offset``: the day in progress is left out.
    """
    keys = partitions_def.get_partition_keys(current_time=now)
    while keys and partitions_def.time_window_for_partition_key(keys[-1]).end > now:
        keys.pop()
    return keys


def current_partition_key(
    partitions_def: dg.TimeWindowPartitionsDefinition, now: datetime
) -> str | None:
    """The key of the day in progress at ``now`` (today), or ``None`` before the first day."""
    keys = partitions_def.get_partition_keys(current_time=now)
    if not keys:
        return None
    window = partitions_def.time_window_for_partition_key(keys[-1])
    return keys[-1] if window.start <= now < window.end else None


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
