"""Warehouse benchmark: the work after the fetch, and memory against the table's size.

    python bench/warehouse_bench.py               # both scenarios (``make bench`` runs them)
    python bench/warehouse_bench.py --scenario year
    python bench/warehouse_bench.py --quick       # 60 days, a 1-million-row table
    python bench/warehouse_bench.py --scenario year --instance postgres

Scenarios (figures and how to read them: ``bench/README.md``, "Warehouse benchmark"):

* **year** — 365 days x 1,000 tasks (365,000 tasks, 3,650 requests) served by the simulated
  API at 20 ms per request, no rate limit, client pacing off; ``topo/tasks`` and every
  ``analytics/*`` asset materialized in one range run with the CLI, ``dagster asset
  materialize --partition-range``, on a fresh ``DAGSTER_HOME`` with the repository's
  ``dagster.yaml``. Figures: wall time, the
  fetch (API span), the landing, the analytics step, everything after the fetch to the run's
  end (landing, checks, analytics, metadata, the analyst copy's publish), the CLI's exit
  after it, peak RSS. Targets: everything after the fetch <= 15 s, peak RSS <= 400 MB.
  Then one daily run on that instance and file: the year's last day again, the same
  selection (its wall time).
* **big-table** — one day of 1,000 tasks materialized through ``topo/tasks`` into a file
  whose ``topo.tasks`` already holds 5,000,000 rows (other days), against the same day into
  an empty file. Figures: peak RSS and time of each. Target: within 50 MB of each other.

Every run is a ``dagster asset materialize`` process of its own (its peak RSS is read with
``getrusage(RUSAGE_CHILDREN)`` once it exited), the simulator runs in another. Each run
checks that the table holds every task once.

``--instance postgres`` runs the same on ``deploy/postgres/dagster.yaml`` instead of the
repository's ``dagster.yaml`` (SQLite): Dagster's runs, events and pool slots in a throwaway
PostgreSQL server on loopback (``topo_pipeline_tests/postgres_server.py``), started for the
benchmark with PostgreSQL's default durability (``fsync`` and synchronous commits on).
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from measured import REPO, materialize_with_the_cli, report, run_child, tasks_metadata

INSTANCES = {
    "sqlite": "SQLite (the repository's dagster.yaml)",
    "postgres": "PostgreSQL (deploy/postgres/dagster.yaml, a local server, default durability)",
}

LATENCY = 0.020
YEAR_DAYS = 365
TASKS_PER_DAY = 1_000
BIG_TABLE_ROWS = 5_000_000
AFTER_FETCH_TARGET_SECONDS = 15.0
YEAR_RSS_TARGET_MB = 400.0
BIG_TABLE_RSS_MARGIN_MB = 50.0


@dataclass(frozen=True)
class RunSpec:
    """One materialization in a fresh process."""

    base_url: str
    first_day: str
    last_day: str
    workdir: str
    analytics: bool
    prefill_rows: int = 0
    """Rows put into ``topo.tasks`` first, by another process (its memory is not counted)."""
    pg_url: str = ""
    """``DAGSTER_PG_URL`` of the instance on PostgreSQL; empty: the SQLite instance."""


@dataclass
class RunResult:
    wall_seconds: float
    fetch_seconds: float
    land_seconds: float
    analytics_seconds: float
    rows: int
    distinct_ids: int
    requests: int
    peak_rss_mb: float
    dagster_events: int = 0
    """Events the run wrote to the instance (materializations per partition, checks, ...)."""
    events_after_fetch: int = 0
    """Of those, the events written from the end of the fetch to the run's end."""
    event_writes_per_second: float = 0.0
    """Events one process stores one after another on the run's instance, alone."""
    analytics_sql_seconds: float = 0.0
    """The analytics step's SQL alone, run again without Dagster on the run's file."""
    before_fetch_seconds: float = 0.0
    """From the CLI's start to the first request: imports, code location, the run's creation."""
    after_fetch_seconds: float = 0.0
    """From the end of the fetch to the run's end (its ``RUN_SUCCESS`` event)."""
    cli_exit_seconds: float = 0.0
    """From the run's end to the CLI's exit: Dagster's teardown, the interpreter's shutdown."""
    prefill_seconds: float = 0.0


class Simulator:
    """``python -m topo_pipeline.simulator`` in its own process, for ``days`` up to ``end``."""

    def __init__(self, days: int, end: date) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                *("-m", "topo_pipeline.simulator", "--port", "0", "--seed", "11"),
                *("--days", str(days), "--end-date", end.isoformat()),
                *("--tasks-per-day", str(TASKS_PER_DAY), "--latency", str(LATENCY)),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self._process.stdout is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        line = self._process.stdout.readline()
        match = re.search(r"TOPO_API_BASE_URL=(\S+)", line)
        if match is None:
            self.close()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = match.group(1)

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run(spec: RunSpec) -> RunResult:
    """Run one materialization in a fresh process and return what it measured."""
    log_path = Path(spec.workdir) / "run.log"
    prefill_seconds = 0.0
    if spec.prefill_rows:
        started = time.monotonic()
        subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "_prefill", json.dumps(asdict(spec))], cwd=REPO, check=True
        )
        prefill_seconds = time.monotonic() - started
    measured = run_child(__file__, "_run", spec, log_path)
    if os.environ.get("TOPO_BENCH_TIMELINE"):
        for line in log_path.read_text().splitlines():
            if line.startswith("  +"):
                print(line)
    return RunResult(**{**measured, "prefill_seconds": prefill_seconds})


def year(quick: bool, instance: str = "sqlite") -> list[str]:
    days = 60 if quick else YEAR_DAYS
    last = date(2025, 12, 31)
    first = last - timedelta(days=days - 1)
    with (
        Simulator(days, last) as api,
        tempfile.TemporaryDirectory(prefix="topo-wh-") as workdir,
        _instance_url(instance) as pg_url,
    ):
        spec = RunSpec(
            api.base_url, first.isoformat(), last.isoformat(), workdir, True, pg_url=pg_url
        )
        result = run(spec)
        _expect(result, days * TASKS_PER_DAY)
        # The next day's routine: one day again, on the instance and file the year left.
        daily = run(RunSpec(**{**asdict(spec), "first_day": last.isoformat()}))
        _expect(daily, days * TASKS_PER_DAY)
    after_fetch = result.after_fetch_seconds
    rate = result.events_after_fetch / after_fetch if after_fetch else 0.0
    lines = [
        f"year: {days} days x {TASKS_PER_DAY:,} tasks, one range run of topo/tasks and every "
        f"analytics asset ({result.requests:,} requests at {LATENCY * 1000:.0f} ms)",
        f"    instance         {INSTANCES[instance]}",
        f"    wall             {result.wall_seconds:8.1f} s",
        f"    fetch (API span) {result.fetch_seconds:8.1f} s",
        f"    landing          {result.land_seconds:8.1f} s",
        f"    analytics step   {result.analytics_seconds:8.1f} s",
        f"    before the fetch {result.before_fetch_seconds:8.1f} s   (CLI start, code location, "
        "the run's creation: a planned event per asset)",
        f"    after the fetch  {after_fetch:8.1f} s   (to the run's end: landing, checks, "
        "analytics, metadata, the analyst copy's publish)",
        f"    the CLI's exit   {result.cli_exit_seconds:8.1f} s   (after the run's end: "
        "Dagster's teardown, the interpreter's shutdown)",
        f"    analytics SQL    {result.analytics_sql_seconds:8.1f} s   (the step's queries alone, "
        "rerun without Dagster)",
        f"    Dagster events   {result.dagster_events:8,}     (written to the instance; "
        f"{result.events_after_fetch:,} after the fetch, {rate:,.0f} per second of it)",
        f"    event writes     {result.event_writes_per_second:8,.0f} /s  (one process storing "
        "events one by one on that instance, nothing else)",
        f"    peak RSS         {result.peak_rss_mb:8.0f} MB  (the CLI process)",
        f"    a daily run      {daily.wall_seconds:8.1f} s   (wall: the last day again, same "
        f"selection and instance; fetch {daily.fetch_seconds:.1f} s, after it "
        f"{daily.after_fetch_seconds:.1f} s, {daily.dagster_events:,} events)",
    ]
    if not quick:
        lines.append(
            _verdict(
                after_fetch <= AFTER_FETCH_TARGET_SECONDS,
                f"after the fetch <= {AFTER_FETCH_TARGET_SECONDS:.0f} s: {after_fetch:.1f} s",
            )
        )
        lines.append(
            _verdict(
                result.peak_rss_mb <= YEAR_RSS_TARGET_MB,
                f"peak RSS <= {YEAR_RSS_TARGET_MB:.0f} MB: {result.peak_rss_mb:.0f} MB",
            )
        )
    return lines


def big_table(quick: bool) -> list[str]:
    rows = 1_000_000 if quick else BIG_TABLE_ROWS
    day = date(2025, 12, 31)
    results = {}
    with Simulator(1, day) as api:
        for label, prefill in (("empty file", 0), (f"{rows:,}-row file", rows)):
            with tempfile.TemporaryDirectory(prefix="topo-wh-") as workdir:
                spec = RunSpec(api.base_url, day.isoformat(), day.isoformat(), workdir, False)
                results[label] = run(RunSpec(**{**asdict(spec), "prefill_rows": prefill}))
            _expect(results[label], TASKS_PER_DAY + prefill)
    lines = [f"big-table: one day of {TASKS_PER_DAY:,} tasks through topo/tasks"]
    for label, result in results.items():
        lines.append(
            f"    into {label:<18} peak RSS {result.peak_rss_mb:6.0f} MB   wall "
            f"{result.wall_seconds:5.1f} s   landing {result.land_seconds:5.2f} s"
            + (
                f"   (file filled in {result.prefill_seconds:.0f} s)"
                if result.prefill_seconds
                else ""
            )
        )
    empty, big = results.values()
    growth = big.peak_rss_mb - empty.peak_rss_mb
    if not quick:
        lines.append(
            _verdict(
                growth <= BIG_TABLE_RSS_MARGIN_MB,
                f"within {BIG_TABLE_RSS_MARGIN_MB:.0f} MB of the empty file: {growth:+.0f} MB",
            )
        )
    return lines


@contextmanager
def _instance_url(instance: str) -> Iterator[str]:
    """``DAGSTER_PG_URL`` of a new database on a throwaway server; empty for SQLite."""
    if instance == "sqlite":
        yield ""
        return
    from topo_pipeline_tests.postgres_server import throwaway_postgres

    with throwaway_postgres(durable=True) as server:
        yield server.create_database("dagster")


def _expect(result: RunResult, tasks: int) -> None:
    if not result.rows == result.distinct_ids == tasks:
        raise RuntimeError(
            f"landed {result.rows} rows / {result.distinct_ids} ids, expected {tasks} once each"
        )


def _verdict(met: bool, text: str) -> str:
    return f"    target {'met' if met else 'MISSED'}: {text}"


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None  # noqa: S101 - the module has one
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["year", "big-table"], action="append")
    parser.add_argument("--quick", action="store_true", help="60 days; a 1-million-row table")
    parser.add_argument(
        "--instance",
        choices=sorted(INSTANCES),
        default="sqlite",
        help="where Dagster keeps runs and events in the year scenario (default: sqlite)",
    )
    args = parser.parse_args(argv)
    chosen = args.scenario or ["year", "big-table"]
    print(f"Warehouse benchmark ({os.cpu_count()} CPUs){' --quick' if args.quick else ''}")
    for name in chosen:
        lines = year(args.quick, args.instance) if name == "year" else big_table(args.quick)
        print("\n".join(lines), flush=True)
    return 0


# -- the measured process ------------------------------------------------------------------


def _run(raw_spec: str) -> int:
    """Run ``dagster asset materialize`` over the spec's range, as a user would; report it.

    The CLI runs in a child process on a fresh ``DAGSTER_HOME`` holding the repository's
    ``dagster.yaml`` (SQLite storage); its peak RSS is read with ``RUSAGE_CHILDREN`` once
    it has exited, and its timings from the run's events and metadata.
    """
    import dagster as dg  # here, so the parent process stays light

    from topo_pipeline.defs.assets.analytics import OP_NAME
    from topo_pipeline.instance import INSTANCE_YAML, prepare_dagster_home
    from topo_pipeline.settings import API_KEY_ENV
    from topo_pipeline.simulator import DEMO_API_KEY
    from topo_pipeline.warehouse.duckdb import connect

    spec = RunSpec(**json.loads(raw_spec))
    workdir = Path(spec.workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPO_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        API_KEY_ENV: DEMO_API_KEY,
        "TOPO_API_BASE_URL": spec.base_url,
        "TOPO_DUCKDB_PATH": str(workdir / "pipeline.duckdb"),
        "TOPO_ANALYST_DUCKDB_PATH": str(workdir / "analyst.duckdb"),
        "TOPO_START_DATE": spec.first_day,
        "TOPO_API_REQUESTS_PER_MINUTE": "0",
    }
    if spec.pg_url:
        from topo_pipeline_tests.postgres_server import PG_URL_ENV, POSTGRES_INSTANCE_YAML

        env[PG_URL_ENV] = spec.pg_url
        os.environ[PG_URL_ENV] = spec.pg_url  # for reading the run back below
        prepare_dagster_home(env, source=POSTGRES_INSTANCE_YAML)
    else:
        prepare_dagster_home(env, source=INSTANCE_YAML)
    # The README's selection: topo/tasks, every table downstream and the analyst copy.
    selection = "topo/tasks*" if spec.analytics else "topo/tasks"
    cli = materialize_with_the_cli(
        ["--select", selection, "--partition-range", f"{spec.first_day}...{spec.last_day}"],
        env,
        workdir,
    )
    wall, cli_started, cli_ended = cli.seconds, cli.started_at, cli.ended_at
    peak = _peak_rss_mb(resource.RUSAGE_CHILDREN)

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)  # this one: the newest
        logs = instance.all_logs(run.run_id)
        event_writes = _event_writes_per_second(instance, run)
    step_times = {
        (entry.step_key, entry.dagster_event.event_type_value): entry.timestamp
        for entry in logs
        if entry.dagster_event is not None
    }
    analytics_seconds = (
        step_times[(OP_NAME, "STEP_SUCCESS")] - step_times[(OP_NAME, "STEP_START")]
        if spec.analytics
        else 0.0
    )
    metadata = tasks_metadata(logs)
    run_ended = next(
        entry.timestamp
        for entry in logs
        if entry.dagster_event is not None
        # Stored under its former name, PIPELINE_SUCCESS.
        and entry.dagster_event.event_type_value == dg.DagsterEventType.RUN_SUCCESS.value
    )
    fetched_at = next(  # topo/tasks logs "fetched N partition(s) in ...s" when the fetch ends
        entry.timestamp
        for entry in logs
        if entry.dagster_event is None and entry.user_message.startswith("fetched ")
    )
    if os.environ.get("TOPO_BENCH_TIMELINE"):
        # Where the time after the fetch goes: entries after a gap of 0.1 s or more.
        previous = fetched_at
        for entry in logs:
            if entry.timestamp >= fetched_at and entry.timestamp - previous >= 0.1:
                what = entry.dagster_event.event_type_value if entry.dagster_event else ""
                gap = entry.timestamp - previous
                print(
                    f"  +{entry.timestamp - fetched_at:6.2f}s (gap {gap:5.2f}s) "
                    f"{entry.step_key or '-'} {what} {entry.user_message[:70]!r}",
                    file=sys.stderr,
                )
            previous = max(previous, entry.timestamp)
    with connect(workdir / "pipeline.duckdb", read_only=True) as con:
        rows, distinct_ids = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM warehouse.topo.tasks"
        ).fetchone() or (0, 0)
    sql_seconds = _analytics_sql_seconds(workdir / "pipeline.duckdb", spec) if spec.analytics else 0
    outcome = RunResult(
        wall_seconds=wall,
        fetch_seconds=float(metadata["fetch_wall_seconds"]),
        land_seconds=float(metadata["land_wall_seconds"]),
        analytics_seconds=analytics_seconds,
        rows=int(rows),
        distinct_ids=int(distinct_ids),
        requests=int(metadata["api_requests"]),
        peak_rss_mb=peak,
        dagster_events=len(logs),
        events_after_fetch=sum(1 for entry in logs if fetched_at < entry.timestamp <= run_ended),
        event_writes_per_second=event_writes,
        analytics_sql_seconds=sql_seconds,
        before_fetch_seconds=fetched_at - float(metadata["fetch_wall_seconds"]) - cli_started,
        after_fetch_seconds=run_ended - fetched_at,
        cli_exit_seconds=cli_ended - run_ended,
    )
    report(outcome)
    return 0


def _event_writes_per_second(instance: Any, run: Any, count: int = 100) -> float:
    """Store ``count`` engine events in ``run``'s log one by one, as a run's steps do."""
    started = time.monotonic()
    for n in range(count):
        instance.report_engine_event(f"bench event {n}", dagster_run=run)
    return count / (time.monotonic() - started)


def _analytics_sql_seconds(path: Path, spec: RunSpec) -> float:
    """Build every analytics table for the run's days again, as the step does, and time it."""
    from topo_pipeline.warehouse import analytics
    from topo_pipeline.warehouse.duckdb import connect

    first, last = date.fromisoformat(spec.first_day), date.fromisoformat(spec.last_day)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    started = time.monotonic()
    with connect(path) as con:
        analytics.replace_task_sla(
            con,
            days,
            as_of=datetime.now(UTC),
            sla_targets=analytics.DEFAULT_SLA_TARGET_MINUTES,
        )
        for table in analytics.ROLLUP_TABLES:
            analytics.replace_rollup(con, table, days)
        analytics.partition_rows(con, days)
        analytics.analytics_columns(con)
        for table in analytics.ANALYTICS_TABLES:
            analytics.headline_metrics_by_day(con, table, days)
    return time.monotonic() - started


def _prefill(raw_spec: str) -> int:
    """Fill ``topo.tasks`` with synthetic tasks on days of 2015-2016 (one every 6 s).

    Each also gets its first version in ``topo.task_history``, as its landing would have.
    """
    from topo_pipeline.warehouse.duckdb import connect
    from topo_pipeline.warehouse.queries import render_sql
    from topo_pipeline.warehouse.schema import HISTORY_FIELDS, ensure_schema

    spec = RunSpec(**json.loads(raw_spec))
    path, rows = Path(spec.workdir) / "pipeline.duckdb", spec.prefill_rows
    origin = datetime(2015, 1, 1, tzinfo=UTC)
    with connect(path) as con:
        ensure_schema(con)
        con.execute(
            """
            INSERT INTO warehouse.topo.tasks BY NAME
            SELECT
                uuid()::VARCHAR AS id, 'org-1' AS organization_id, 'CALL' AS type,
                ['HOT', 'TODAY', 'EXTRA'][1 + i % 3] AS priority, 'COMPLETED' AS status,
                'seq-' || (i % 1000) AS sequence_id, 'user-' || (i % 50) AS assignee_user_id,
                $origin + to_seconds(i * 6) AS created_at,
                $origin + to_seconds(i * 6 + 600) AS completed_at,
                $origin + to_seconds(i * 6 + 600) AS updated_at,
                ($origin + to_seconds(i * 6))::DATE AS partition_date,
                $origin AS loaded_at,
                json_object('id', 'x', 'status', 'COMPLETED', 'priority', 'HOT') AS raw
            FROM range($rows) AS t(i)
            """,
            {"rows": rows, "origin": origin},
        )
        con.execute(render_sql("task_history_seed_all", fields=", ".join(HISTORY_FIELDS)))
    return 0


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_run":
        sys.exit(_run(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "_prefill":
        sys.exit(_prefill(sys.argv[2]))
    sys.exit(main())
