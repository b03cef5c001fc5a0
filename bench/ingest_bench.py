"""Ingestion benchmark: the real ``topo/tasks`` asset against the simulated Topo API.

    python bench/ingest_bench.py            # everything (what ``make bench`` runs)
    python bench/ingest_bench.py --quick    # smaller loads, same shape, ~3 minutes
    python bench/ingest_bench.py --scenario 2

Scenarios (see ``bench/README.md`` for the figures and how to read them):

1. **Rate-limited.** 80 ms latency and a 300 requests/minute token bucket on the server;
   30 days x 3,000 tasks as one single-run backfill, the client paced at the API's limit.
   The bound is ``pages / allowed rate``. Run at the default page concurrency and at 1.
2. **Unlimited.** The same load, 80 ms latency, no rate limit. The bound is
   ``latency x pages / concurrency``. Run at the default page concurrency and at 1.
3. **Large day.** One day of 100,000 tasks; the figure that matters is peak RSS.

Every ingestion runs in its own Python process (``_ingest``), so its peak RSS
(``getrusage``) is that run's alone; the simulator runs in another process (``_serve``)
so its memory and CPU are not counted. Each run materializes ``topo/tasks`` through
``dagster.materialize`` with a partition range, exactly as a backfill from the UI does,
then checks that the table holds every task exactly once.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULT_MARKER = "BENCH-RESULT "
SEED = 5
START = date(2025, 1, 6)  # wholly in the past: the data set is reproducible from the seed
LATENCY = 0.080
RATE_LIMIT = 300.0


@dataclass(frozen=True)
class ServerSpec:
    """What the simulator serves and how it misbehaves."""

    days: int
    tasks_per_day: int
    latency_seconds: float
    rate_limit_per_minute: float | None
    rate_limit_burst: int | None = None  # None: one minute's worth (the simulator's default)
    start_date: str = START.isoformat()
    seed: int = SEED


@dataclass(frozen=True)
class IngestSpec:
    """One materialization of ``topo/tasks`` over a partition range."""

    base_url: str
    first_day: str
    last_day: str
    requests_per_minute: float | None
    concurrency: int | None  # None: the pipeline's default
    workdir: str


@dataclass
class IngestResult:
    """What one ingestion process measured."""

    wall_seconds: float
    rows: int
    distinct_ids: int
    requests: int
    pages: int
    retries: int
    rate_limited: int
    api_seconds: float
    wait_seconds: float
    fetch_seconds: float
    land_seconds: float
    concurrency: int
    peak_rss_mb: float
    rss_before_run_mb: float
    served_429: int = 0


@dataclass(frozen=True)
class Scenario:
    """A load, the runs it gets, and how its bound is computed."""

    number: int
    title: str
    server: ServerSpec
    rate_limited: bool
    baseline: bool = True


# -- orchestration (the parent process) ----------------------------------------------------


def scenarios(quick: bool, burst: int | None = None, latency: float = LATENCY) -> list[Scenario]:
    """The three scenarios; ``quick`` shrinks the 30-day loads to 6 days."""
    days = 6 if quick else 30
    return [
        Scenario(
            1,
            f"rate-limited: {days} days x 3,000 tasks, {latency * 1000:.0f} ms latency, "
            f"{RATE_LIMIT:.0f} requests/min limit"
            + (f" (burst {burst})" if burst else " (burst: a minute's worth)"),
            ServerSpec(days, 3_000, latency, RATE_LIMIT, rate_limit_burst=burst),
            rate_limited=True,
        ),
        Scenario(
            2,
            f"unlimited: {days} days x 3,000 tasks, {latency * 1000:.0f} ms latency, no limit",
            ServerSpec(days, 3_000, latency, None),
            rate_limited=False,
        ),
        Scenario(
            3,
            f"large day: 1 day x 100,000 tasks, {latency * 1000:.0f} ms latency, no limit",
            ServerSpec(1, 100_000, latency, None),
            rate_limited=False,
            baseline=False,
        ),
    ]


class Simulator:
    """The simulated API in its own process; ``reset`` refills its rate-limit bucket."""

    def __init__(self, spec: ServerSpec) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "_serve", json.dumps(asdict(spec))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.base_url = self._reply()

    def _reply(self) -> str:
        assert self._process.stdout is not None  # noqa: S101 - set by Popen(stdout=PIPE)
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator exited with {self._process.wait()}")
        return line.strip()

    def command(self, text: str) -> str:
        """Send one command line (``reset`` / ``served_429``) and return its answer."""
        assert self._process.stdin is not None  # noqa: S101 - set by Popen(stdin=PIPE)
        self._process.stdin.write(text + "\n")
        self._process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        """Stop the simulator (it exits when its stdin closes)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_ingest(spec: IngestSpec) -> IngestResult:
    """Run one ingestion in a fresh process and return what it measured."""
    log_path = Path(spec.workdir) / "ingest.log"
    with log_path.open("w") as log:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "_ingest", json.dumps(asdict(spec))],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=REPO,
            check=False,
        )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return IngestResult(**json.loads(line[len(RESULT_MARKER) :]))
    tail = log_path.read_text()[-4000:]
    raise RuntimeError(f"ingestion failed (exit {done.returncode}); log tail:\n{tail}")


def measure(scenario: Scenario, concurrency: int | None, simulator: Simulator) -> IngestResult:
    """One run of ``scenario`` at ``concurrency`` (``None``: default) on a fresh bucket."""
    simulator.command("reset")
    server = scenario.server
    last = date.fromisoformat(server.start_date) + timedelta(days=server.days - 1)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as workdir:
        result = run_ingest(
            IngestSpec(
                base_url=simulator.base_url,
                first_day=server.start_date,
                last_day=last.isoformat(),
                requests_per_minute=server.rate_limit_per_minute,
                concurrency=concurrency,
                workdir=workdir,
            )
        )
    result.served_429 = int(simulator.command("served_429"))
    expected = server.days * server.tasks_per_day
    if not result.rows == result.distinct_ids == expected:
        raise RuntimeError(
            f"scenario {scenario.number}: landed {result.rows} rows / {result.distinct_ids} "
            f"ids, expected {expected} tasks exactly once"
        )
    return result


def bound_seconds(scenario: Scenario, result: IngestResult) -> float:
    """The fastest any client could fetch ``result.pages`` pages under the scenario's API."""
    if scenario.rate_limited:
        assert scenario.server.rate_limit_per_minute is not None  # noqa: S101
        return result.pages / (scenario.server.rate_limit_per_minute / 60.0)
    return scenario.server.latency_seconds * result.pages / result.concurrency


def report(scenario: Scenario, label: str, result: IngestResult) -> list[str]:
    """The lines printed for one run."""
    tasks = result.rows
    lines = [
        f"  [{label}] page concurrency {result.concurrency}",
        f"    wall time        {result.wall_seconds:8.1f} s   (fetch {result.fetch_seconds:.1f} s,"
        f" land {result.land_seconds:.1f} s, Dagster run and checks"
        f" {result.wall_seconds - result.fetch_seconds - result.land_seconds:.1f} s)",
        f"    tasks/s          {tasks / result.wall_seconds:8.0f}   ({tasks:,} tasks landed)",
        f"    requests/s       {result.requests / result.wall_seconds:8.2f}"
        f"   ({result.requests:,} requests, {result.pages:,} pages)",
    ]
    if scenario.rate_limited or result.concurrency > 1:
        bound = bound_seconds(scenario, result)
        kind = "rate-limit" if scenario.rate_limited else "latency"
        formula = (
            f"{result.pages} pages / {scenario.server.rate_limit_per_minute:.0f} per min"
            if scenario.rate_limited
            else f"{scenario.server.latency_seconds * 1000:.0f} ms x {result.pages} pages "
            f"/ {result.concurrency}"
        )
        lines += [
            f"    {kind} bound {bound:8.1f} s   ({formula})",
            f"    achieved/bound   {bound / result.wall_seconds:8.1%}",
        ]
    lines += [
        f"    429s received    {result.rate_limited:8d}   (server counted {result.served_429})",
        f"    retries          {result.retries:8d}",
        f"    peak RSS         {result.peak_rss_mb:8.0f} MB"
        f"   ({result.rss_before_run_mb:.0f} MB after imports, before the run)",
    ]
    return lines


def verdict(scenario: Scenario, result: IngestResult, speedup: float | None) -> str:
    """The issue's target for ``scenario`` and whether ``result`` met it."""
    if scenario.number == 1:
        ratio = bound_seconds(scenario, result) / result.wall_seconds
        met = ratio >= 0.9 and result.rate_limited == 0
        text = f">= 90% of the rate-limit bound, zero 429s: {ratio:.1%}, {result.rate_limited}"
    elif scenario.number == 2:
        met = speedup is not None and speedup >= 5
        text = f">= 5x page concurrency 1: {speedup or 0:.2f}x"
    else:
        met = result.peak_rss_mb < 300
        text = f"peak RSS under 300 MB: {result.peak_rss_mb:.0f} MB"
    return f"scenario {scenario.number}: {'met ' if met else 'MISSED'} {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6-day loads instead of 30")
    parser.add_argument(
        "--scenario", type=int, action="append", choices=(1, 2, 3), help="run only these"
    )
    parser.add_argument(
        "--concurrency", type=int, help="page concurrency of the main runs (default: settings)"
    )
    parser.add_argument(
        "--burst",
        type=int,
        help="scenario 1: the server's token-bucket capacity (default: a minute's worth)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY,
        help=f"seconds the server takes per request (default {LATENCY})",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)

    chosen = [
        s
        for s in scenarios(args.quick, args.burst, args.latency)
        if not args.scenario or s.number in args.scenario
    ]
    print(f"topo_pipeline ingestion benchmark ({'quick' if args.quick else 'full'})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {sys.platform}")
    everything: dict[str, Any] = {}
    verdicts: list[str] = []
    started = time.monotonic()
    for scenario in chosen:
        print(f"\nScenario {scenario.number} - {scenario.title}")
        sys.stdout.flush()
        with Simulator(scenario.server) as simulator:
            main_run = measure(scenario, args.concurrency, simulator)
            for line in report(scenario, "default", main_run):
                print(line)
            sys.stdout.flush()
            runs = {"default": asdict(main_run)}
            if scenario.baseline:
                baseline = measure(scenario, 1, simulator)
                for line in report(scenario, "baseline", baseline):
                    print(line)
                speedup = baseline.wall_seconds / main_run.wall_seconds
                print(f"  speed-up vs page concurrency 1: {speedup:.2f}x")
                runs["baseline"] = asdict(baseline)
                runs["speedup"] = speedup
        everything[f"scenario_{scenario.number}"] = runs
        verdicts.append(verdict(scenario, main_run, runs.get("speedup")))
        sys.stdout.flush()
    print("\nTargets (issue #5):")
    if args.quick:
        # Six days instead of thirty: run start-up and landing weigh more than at full size.
        print("  (the targets are set for the full loads; --quick only shows the trend)")
    for line in verdicts:
        print(f"  {line}")
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
    return 0


# -- the simulator process -----------------------------------------------------------------


def serve(raw_spec: str) -> int:
    """Serve the simulated API; answer commands on stdin until it closes."""
    from topo_pipeline.simulator import (  # only this process needs it
        DatasetSpec,
        FaultPlan,
        SimulatedTopoApi,
        TaskStore,
        generate_dataset,
    )

    spec = ServerSpec(**json.loads(raw_spec))
    data = generate_dataset(
        DatasetSpec(
            seed=spec.seed,
            start_date=date.fromisoformat(spec.start_date),
            days=spec.days,
            tasks_per_day=[spec.tasks_per_day] * spec.days,
        )
    )
    plan = FaultPlan(
        latency_seconds=spec.latency_seconds,
        rate_limit_per_minute=spec.rate_limit_per_minute,
        rate_limit_burst=spec.rate_limit_burst,
    )
    with SimulatedTopoApi(TaskStore(data.tasks, data.sequence_templates), faults=plan) as api:
        del data
        print(api.base_url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                api.faults = plan  # a full bucket, as for a client that was idle a while
                api.clear_requests()
                print("ok", flush=True)
            elif command == "served_429":
                print(sum(1 for r in api.requests if r.status == 429), flush=True)
            else:
                print(f"unknown command {command!r}", flush=True)
    return 0


# -- the ingestion process -----------------------------------------------------------------


def ingest(raw_spec: str) -> int:
    """Materialize ``topo/tasks`` over the spec's range; print the result as one JSON line."""
    import dagster as dg  # here, so the parent process stays light

    from topo_pipeline.definitions import build_defs
    from topo_pipeline.defs.assets.ingestion import TASKS_KEY
    from topo_pipeline.settings import API_KEY_ENV, Settings
    from topo_pipeline.simulator import DEMO_API_KEY
    from topo_pipeline.warehouse.duckdb import connect

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    spec = IngestSpec(**json.loads(raw_spec))
    os.environ[API_KEY_ENV] = DEMO_API_KEY
    workdir = Path(spec.workdir)
    defaults = Settings()
    settings = Settings(
        api_base_url=spec.base_url,
        duckdb_path=workdir / "pipeline.duckdb",
        analyst_duckdb_path=workdir / "analyst.duckdb",
        start_date=date.fromisoformat(spec.first_day),
        requests_per_minute=spec.requests_per_minute,
        concurrency=spec.concurrency or defaults.concurrency,
    )
    defs = build_defs(settings)
    tasks_asset = defs.get_assets_def(TASKS_KEY)
    rss_before = _peak_rss_mb()

    started = time.monotonic()
    result = dg.materialize(  # an ephemeral instance: nothing is left behind
        [tasks_asset],
        resources=defs.resources,
        tags={
            "dagster/asset_partition_range_start": spec.first_day,
            "dagster/asset_partition_range_end": spec.last_day,
        },
    )
    wall = time.monotonic() - started
    peak = _peak_rss_mb()

    metadata = next(
        {key: value.value for key, value in event.metadata.items()}
        for event in (
            e.event_specific_data.materialization  # type: ignore[union-attr]
            for e in result.get_asset_materialization_events()
        )
    )
    with connect(settings.duckdb_path, read_only=True) as con:
        rows, distinct_ids = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM warehouse.topo.tasks"
        ).fetchone() or (0, 0)
    outcome = IngestResult(
        wall_seconds=wall,
        rows=int(rows),
        distinct_ids=int(distinct_ids),
        requests=int(metadata["api_requests"]),
        pages=int(metadata["api_pages"]),
        retries=int(metadata["api_retries"]),
        rate_limited=int(metadata["api_rate_limited_429"]),
        api_seconds=float(metadata["api_seconds"]),
        wait_seconds=float(metadata["wait_seconds"]),
        fetch_seconds=float(metadata["fetch_wall_seconds"]),
        land_seconds=float(metadata["land_wall_seconds"]),
        concurrency=settings.concurrency,
        peak_rss_mb=peak,
        rss_before_run_mb=rss_before,
    )
    print(RESULT_MARKER + json.dumps(asdict(outcome)), flush=True)
    return 0


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_serve":
        sys.exit(serve(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "_ingest":
        sys.exit(ingest(sys.argv[2]))
    sys.exit(main())
