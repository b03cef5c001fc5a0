"""Live refresh benchmark: one refresh of today's partition, end to end, as the CLI runs it.

    python bench/live_bench.py              # empty history, then a year already landed
    python bench/live_bench.py --runs 3     # each scenario three times

Each run is ``dagster asset materialize --select 'topo/tasks*' --partition <today>`` in a
process of its own, on a fresh ``DAGSTER_HOME`` holding the repository's ``dagster.yaml``:
today's 1,000 tasks fetched from the simulated API (20 ms per request, in this process's
thread, no rate limit), landed, every analytics table rebuilt whole, the SLA notifications
judged (no webhook) and the analyst copy published. The same work a live refresh run does;
under the daemon a run's process start is added and the CLI's own start-up is not.

Scenarios (figures: ``bench/README.md``, "Live refresh benchmark"):

* **empty** — the pipeline's file holds nothing before today.
* **year** — the file already holds 365 days x 1,000 tasks before today (their landing not
  counted), so the analytics rebuild and the publish cover a year.

Target: <= 15 s from the command's start to its exit. The load average is printed with
each run (2 vCPUs shared with others).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from measured import REPO, materialize_with_the_cli, report, run_child, tasks_metadata

LATENCY = 0.020
TASKS_TODAY = 1_000
YEAR_DAYS = 365
TARGET_SECONDS = 15.0
STEPS = ("topo__tasks", "analytics_tables", "analytics__sla_alerts_sent", "publish__analyst_copy")


@dataclass(frozen=True)
class RunSpec:
    base_url: str
    today: str
    workdir: str
    history_days: int


@dataclass
class RunResult:
    wall_seconds: float
    """From the command's start to its exit."""
    steps: dict[str, float]
    """Seconds from each step's start to its success."""
    phases: dict[str, float]
    """Seconds of: the CLI's start to the run's start (imports, the code location, the run's
    creation); the run's start to its first step; the steps; the last step to the run's end
    (checks, events); the run's end to the CLI's exit."""
    fetch_seconds: float
    requests: int
    rows_today: int
    rows: int
    load_before: float
    load_after: float
    peak_rss_mb: float
    prefill_seconds: float = 0.0


def one_run(base_url: str, today: date, history_days: int) -> RunResult:
    with tempfile.TemporaryDirectory(prefix="topo-live-") as workdir:
        spec = RunSpec(base_url, today.isoformat(), workdir, history_days)
        prefill = 0.0
        if history_days:
            started = time.monotonic()
            subprocess.run(  # noqa: S603 - our own interpreter and script
                [sys.executable, __file__, "_prefill", json.dumps(asdict(spec))],
                cwd=REPO,
                check=True,
            )
            prefill = time.monotonic() - started
        measured = run_child(__file__, "_run", spec, Path(workdir) / "run.log")
    result = RunResult(**{**measured, "prefill_seconds": prefill})
    if result.rows_today != TASKS_TODAY:
        raise RuntimeError(f"landed {result.rows_today} tasks for today, not {TASKS_TODAY}")
    return result


def main(argv: list[str] | None = None) -> int:
    from topo_pipeline.simulator import DatasetSpec, SimulatedTopoApi, TaskStore, generate_dataset
    from topo_pipeline.simulator.faults import FaultPlan

    assert __doc__ is not None  # noqa: S101 - the module has one
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--scenario", choices=["empty", "year"], action="append")
    args = parser.parse_args(argv)
    today = datetime.now(UTC).date()
    # Today's 1,000 tasks, the whole day's (a live refresh late in the day).
    data = generate_dataset(
        DatasetSpec(seed=11, start_date=today, days=1, tasks_per_day=[TASKS_TODAY])
    )
    print(f"Live refresh benchmark ({os.cpu_count()} CPUs), today {today} (UTC)")
    with SimulatedTopoApi(TaskStore(data.tasks), faults=FaultPlan(latency_seconds=LATENCY)) as api:
        for name in args.scenario or ["empty", "year"]:
            history = YEAR_DAYS if name == "year" else 0
            for _ in range(args.runs):
                result = one_run(api.base_url, today, history)
                steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in result.steps.items())
                phases = ", ".join(
                    f"{name} {seconds:.1f}" for name, seconds in result.phases.items()
                )
                verdict = "met" if result.wall_seconds <= TARGET_SECONDS else "MISSED"
                print(
                    f"{name:>5}: {result.rows:,} tasks in the file; wall "
                    f"{result.wall_seconds:.1f} s (target {TARGET_SECONDS:.0f} s {verdict}); "
                    f"fetch {result.fetch_seconds:.2f} s in {result.requests} requests; "
                    f"phases (s): {phases}; steps (s): {steps}; "
                    f"peak RSS {result.peak_rss_mb:.0f} MB; "
                    f"load {result.load_before:.2f} -> {result.load_after:.2f}",
                    flush=True,
                )
    return 0


# -- the measured process ------------------------------------------------------------------


def _run(raw_spec: str) -> int:
    """Run ``dagster asset materialize`` for today's partition and report it."""
    import dagster as dg  # here, so the parent process stays light

    from topo_pipeline.instance import prepare_dagster_home
    from topo_pipeline.settings import API_KEY_ENV
    from topo_pipeline.simulator import DEMO_API_KEY
    from topo_pipeline.warehouse.duckdb import connect

    spec = RunSpec(**json.loads(raw_spec))
    workdir = Path(spec.workdir)
    today = date.fromisoformat(spec.today)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPO_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        API_KEY_ENV: DEMO_API_KEY,
        "TOPO_API_BASE_URL": spec.base_url,
        "TOPO_DUCKDB_PATH": str(workdir / "pipeline.duckdb"),
        "TOPO_ANALYST_DUCKDB_PATH": str(workdir / "analyst.duckdb"),
        "TOPO_START_DATE": (today - timedelta(days=YEAR_DAYS + 1)).isoformat(),
        "TOPO_API_REQUESTS_PER_MINUTE": "0",
    }
    prepare_dagster_home(env)
    load_before = os.getloadavg()[0]
    cli = materialize_with_the_cli(
        ["--select", "topo/tasks*", "--partition", spec.today], env, workdir
    )
    wall, cli_started, cli_ended = cli.seconds, cli.started_at, cli.ended_at
    load_after = os.getloadavg()[0]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        logs = instance.all_logs(run.run_id)
    times = {
        (entry.step_key, entry.dagster_event.event_type_value): entry.timestamp
        for entry in logs
        if entry.dagster_event is not None
    }
    steps = {
        step: times[(step, "STEP_SUCCESS")] - times[(step, "STEP_START")]
        for step in STEPS
        if (step, "STEP_SUCCESS") in times
    }
    run_start = times[(None, "PIPELINE_START")]
    run_end = times[(None, "PIPELINE_SUCCESS")]
    starts = [t for (_, kind), t in times.items() if kind == "STEP_START"]
    ends = [t for (_, kind), t in times.items() if kind == "STEP_SUCCESS"]
    phases = {
        "to the run's start": run_start - cli_started,
        "to the first step": min(starts) - run_start,
        "steps": max(ends) - min(starts),
        "to the run's end": run_end - max(ends),
        "to the CLI's exit": cli_ended - run_end,
    }
    metadata = tasks_metadata(logs)
    with connect(workdir / "pipeline.duckdb", read_only=True) as con:
        rows, rows_today = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE partition_date = $today) "
            "FROM warehouse.topo.tasks",
            {"today": today},
        ).fetchone() or (0, 0)
    report(
        RunResult(
            wall_seconds=wall,
            steps=steps,
            phases=phases,
            fetch_seconds=float(metadata["fetch_wall_seconds"]),
            requests=int(metadata["api_requests"]),
            rows_today=int(rows_today),
            rows=int(rows),
            load_before=load_before,
            load_after=load_after,
            peak_rss_mb=peak,
        )
    )
    return 0


def _prefill(raw_spec: str) -> int:
    """Fill the file with ``history_days`` x 1,000 tasks on the days before today.

    Mostly completed, some skipped and a few still open; each gets its first version in
    ``topo.task_history``, as its landing would have given it. Then the analytics are built
    once, as the daily runs would have left them.
    """
    from topo_pipeline.warehouse import analytics
    from topo_pipeline.warehouse.duckdb import connect
    from topo_pipeline.warehouse.queries import render_sql
    from topo_pipeline.warehouse.schema import HISTORY_FIELDS, ensure_schema

    spec = RunSpec(**json.loads(raw_spec))
    path = Path(spec.workdir) / "pipeline.duckdb"
    today = date.fromisoformat(spec.today)
    origin = datetime.combine(today - timedelta(days=spec.history_days), datetime.min.time(), UTC)
    rows = spec.history_days * 1_000
    with connect(path) as con:
        ensure_schema(con)
        con.execute(
            """
            INSERT INTO warehouse.topo.tasks BY NAME
            SELECT
                uuid()::VARCHAR AS id, 'org-1' AS organization_id,
                ['CALL', 'EMAIL_REPLY', 'LINKEDIN_REPLY', 'NEW_LEAD_REVIEW'][1 + i % 4] AS type,
                ['HOT', 'TODAY', 'EXTRA'][1 + i % 3] AS priority,
                CASE WHEN i % 50 = 0 THEN 'PENDING' WHEN i % 10 = 0 THEN 'SKIPPED'
                     ELSE 'COMPLETED' END AS status,
                'seq-' || (i % 1000) AS sequence_id, 'user-' || (i % 50) AS assignee_user_id,
                $origin + to_milliseconds(i * 86400) AS created_at,
                CASE WHEN i % 10 <> 0
                    THEN $origin + to_milliseconds(i * 86400 + 2400000 + (i % 7) * 600000)
                END AS completed_at,
                CASE WHEN i % 10 = 0 AND i % 50 <> 0
                    THEN $origin + to_milliseconds(i * 86400 + 600000)
                END AS skipped_at,
                $origin + to_milliseconds(i * 86400 + 3600000) AS updated_at,
                ($origin + to_milliseconds(i * 86400))::DATE AS partition_date,
                $origin AS loaded_at,
                json_object('id', 'x', 'status', 'COMPLETED', 'priority', 'HOT') AS raw
            FROM range($rows) AS t(i)
            """,
            {"rows": rows, "origin": origin},
        )
        con.execute(render_sql("task_history_seed_all", fields=", ".join(HISTORY_FIELDS)))
        days = [origin.date() + timedelta(days=n) for n in range(spec.history_days)]
        analytics.replace_task_sla(
            con, days, as_of=datetime.now(UTC), sla_targets=analytics.DEFAULT_SLA_TARGET_MINUTES
        )
        for table in analytics.ROLLUP_TABLES:
            analytics.replace_rollup(con, table, days)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_run":
        sys.exit(_run(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "_prefill":
        sys.exit(_prefill(sys.argv[2]))
    sys.exit(main())
