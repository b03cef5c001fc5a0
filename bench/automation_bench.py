"""Automation benchmark: one tick of ``downstream_automation_sensor`` over years of days.

    python bench/automation_bench.py            # three years of daily partitions
    python bench/automation_bench.py --years 5

The downstream assets follow every partition from ``TOPO_START_DATE`` on (no lookback), so
each tick evaluates their automation condition over every daily partition. This measures
that evaluation, ``dagster.evaluate_automation_conditions`` on the real code location's
assets (what the sensor runs each tick), on a test instance whose history holds every day
of ``topo/tasks`` and of the five analytics tables, in four situations:

1. the first tick, with no history at all;
2. the first tick after the whole history was materialized (the evaluation reads it all);
3. a quiet tick: nothing happened since the previous one (the steady state);
4. the tick after one day more than a year old was re-materialized in ``topo/tasks``
   alone; it must request that day of each of the five analytics tables.

It prints seconds per tick and the partitions requested; it asserts the requests only.
"""

import argparse
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from topo_pipeline.definitions import build_defs
from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.jobs import DOWNSTREAM_SELECTION
from topo_pipeline.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=3, help="years of daily partitions")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    start = (now - timedelta(days=365 * args.years)).date()
    with tempfile.TemporaryDirectory() as folder, dg.instance_for_test() as instance:
        settings = Settings(
            duckdb_path=Path(folder) / "pipeline.duckdb",
            analyst_duckdb_path=Path(folder) / "analyst.duckdb",
            start_date=start,
        )
        defs = build_defs(settings)
        downstream = sorted(DOWNSTREAM_SELECTION.resolve(defs.resolve_asset_graph()))
        days = [str(start + timedelta(days=i)) for i in range((now.date() - start).days)]
        print(f"{len(days)} daily partitions ({days[0]}..{days[-1]}), {len(downstream)} assets")

        def tick(label: str, cursor: object) -> tuple[object, dict[str, set[str]]]:
            started = time.perf_counter()
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, evaluation_time=now, cursor=cursor
            )
            seconds = time.perf_counter() - started
            requested = {
                key.to_user_string(): result.get_requested_partitions(key) for key in downstream
            }
            total = sum(len(p) for p in requested.values())
            print(f"{label:<58} {seconds:7.2f} s   {total} partition(s) requested")
            return result.cursor, requested

        cursor, _ = tick("1. first tick, empty history", None)

        started = time.perf_counter()
        for key in [TASKS_KEY, *downstream]:
            for day in days:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
        print(f"   (history written: {time.perf_counter() - started:.0f} s)")
        cursor, _ = tick("2. first tick after the whole history", cursor)
        cursor, requested = tick("3. quiet tick", cursor)
        if any(requested.values()):
            raise SystemExit(f"a quiet tick requested partitions: {requested}")

        old_day = str(now.date() - timedelta(days=400))
        instance.report_runless_asset_event(dg.AssetMaterialization(TASKS_KEY, partition=old_day))
        cursor, requested = tick(f"4. after topo/tasks {old_day} alone (400 days back)", cursor)
        if requested != {key.to_user_string(): {old_day} for key in downstream}:
            raise SystemExit(f"expected {old_day} of every analytics table, got {requested}")
        tick("5. quiet tick again", cursor)


if __name__ == "__main__":
    main()
