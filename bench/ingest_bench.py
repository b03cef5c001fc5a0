"""Ingestion benchmark: the real ``topo/tasks`` asset against the simulated Topo API.

    python bench/ingest_bench.py                 # every scenario (what ``make bench`` runs)
    python bench/ingest_bench.py --quick         # smaller loads, same shape
    python bench/ingest_bench.py --scenario bucket --scenario unlimited

Every run uses the settings a new user gets: no ``TOPO_API_*`` tuning variable is set, so
the client finds the API's rate limit itself. A scenario with a baseline runs a second
time at page concurrency 1 (``TOPO_API_CONCURRENCY=1``), side by side. The scenarios are
the rows of :data:`SCENARIOS` (a load, the simulated API, a target); add one there.

Every ingestion runs in its own Python process (``_ingest``), so its peak RSS
(``getrusage``) is that run's alone; the simulator runs in another process (``_serve``),
whose record of the requests gives the API span (first request received to last answer
written), the 429s, and the requests sent again before their ``Retry-After`` had passed.
Each run materializes ``topo/tasks`` through ``dagster.materialize`` with a partition
range, exactly as a backfill from the UI does, then checks that the table holds every task
exactly once (the benchmark fails otherwise).
"""

import argparse
import collections
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from measured import REPO, report, run_child

SEED = 5
START = date(2025, 1, 6)  # wholly in the past: the data set is reproducible from the seed
LATENCY = 0.080
DEFAULT_CONCURRENCY = 8  # the pipeline's default TOPO_API_CONCURRENCY, for the bounds
PREVIOUS_DEFAULT_RPM = 120.0  # the fixed pacing the client had before adaptive control


@dataclass(frozen=True)
class ServerSpec:
    """What the simulator serves and how it limits requests (``FaultPlan`` fields)."""

    days: int
    tasks_per_day: int
    latency_seconds: float = LATENCY
    rate_limit_per_minute: float | None = None
    rate_limiter: str = "token_bucket"
    rate_limit_burst: int | None = None
    rate_limit_schedule: tuple[tuple[float, float], ...] = ()
    rate_limit_headers: str | None = None
    start_date: str = START.isoformat()
    seed: int = SEED

    @property
    def burst(self) -> int:
        """Requests the limiter admits back to back at the start."""
        if self.rate_limit_per_minute is None:
            return 0
        if self.rate_limiter == "sliding_window":
            return 1  # the default window admits one request per interval
        return self.rate_limit_burst or math.floor(self.rate_limit_per_minute)

    def bound_seconds(self, pages: int, concurrency: int) -> float:
        """The shortest API span in which any client could get ``pages`` pages.

        Without a limit: the latency of ``pages / concurrency`` rounds. With one: the time
        until the limiter has admitted ``pages`` requests (its burst at once, then its rate,
        following the schedule), plus one latency for the last answer.
        """
        if self.rate_limit_per_minute is None:
            return self.latency_seconds * pages / concurrency
        left = pages - self.burst
        moment, rate = 0.0, self.rate_limit_per_minute / 60.0
        for change_at, per_minute in [*self.rate_limit_schedule, (math.inf, 0.0)]:
            if left <= rate * (change_at - moment):
                return moment + max(0.0, left) / rate + self.latency_seconds
            left -= rate * (change_at - moment)
            moment, rate = change_at, per_minute / 60.0
        raise AssertionError("unreachable: the last phase never ends")


@dataclass(frozen=True)
class IngestSpec:
    """One materialization of ``topo/tasks`` over a partition range."""

    base_url: str
    first_day: str
    last_day: str
    concurrency: int | None  # None: the pipeline's default (no variable set)
    workdir: str


@dataclass
class IngestResult:
    """What one ingestion process measured, plus what the simulator recorded of it."""

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
    served: dict[str, float] = field(default_factory=dict)  # from the simulator

    @property
    def share_429(self) -> float:
        return self.served["rate_limited"] / max(1, self.served["requests"])


@dataclass(frozen=True)
class Target:
    """What a scenario's default run must achieve; ``None`` skips a criterion."""

    span_over_bound: float | None = None  # API span / bound at most
    share_429: float | None = None  # 429s / requests at most
    peak_rss_mb: float | None = None

    def check(self, server: ServerSpec, result: IngestResult) -> tuple[bool, str]:
        """Whether ``result`` met the target, and the figures that say so."""
        checks = [(result.served["early_retries"] == 0, "none retried early")]
        if self.span_over_bound is not None:
            ratio = span_ratio(server, result)
            checks.append((ratio <= self.span_over_bound, f"span/bound {ratio:.2f}"))
            checks[-1] = (checks[-1][0], checks[-1][1] + f" <= {self.span_over_bound}")
        if self.share_429 is not None:
            met = result.share_429 <= self.share_429 + 1e-12
            text = f"429s {result.share_429:.1%} <= {self.share_429:.0%}"
            if self.share_429 == 0:
                met, text = result.served["rate_limited"] == 0, "zero 429s"
            checks.append((met, text))
        if self.peak_rss_mb is not None:
            checks.append(
                (result.peak_rss_mb < self.peak_rss_mb, f"peak RSS < {self.peak_rss_mb:.0f} MB")
            )
        text = ", ".join(f"{text}{'' if met else ' (MISSED)'}" for met, text in checks)
        return all(met for met, _ in checks), text


@dataclass(frozen=True)
class Scenario:
    """A named load against one simulated API, the runs it gets, and its target."""

    name: str
    title: str
    server: ServerSpec
    target: Target
    baseline: bool = True  # also run at page concurrency 1

    def quick(self) -> "Scenario":
        """The same scenario on about a third of the load."""
        return replace(self, server=replace(self.server, days=max(1, self.server.days // 3)))


def _limited(
    name: str, title: str, days: int, target: Target, **limit: Any
) -> tuple[Scenario, Scenario]:
    """A rate-limited scenario, and the same with ``RateLimit-*`` headers on (zero 429s)."""
    server = ServerSpec(days=days, tasks_per_day=1_000, **limit)
    plain = Scenario(name, title, server, target)
    with_headers = Scenario(
        f"{name}-headers",
        f"{title}, RateLimit-* headers on",
        replace(server, rate_limit_headers="ratelimit"),
        Target(share_429=0.0),
        baseline=False,
    )
    return plain, with_headers


BUCKET, BUCKET_HEADERS = _limited(
    "bucket",
    "token bucket 300/min, burst 10",
    40,
    Target(span_over_bound=1.05, share_429=0.03),
    rate_limit_per_minute=300.0,
    rate_limit_burst=10,
)
STRICT, STRICT_HEADERS = _limited(
    "strict",
    "strict sliding window 120/min, no burst",
    10,
    Target(share_429=0.05),
    rate_limit_per_minute=120.0,
    rate_limiter="sliding_window",
)
FALLING, FALLING_HEADERS = _limited(
    "falling",
    "token bucket 600/min falling to 120/min 10 s into the run, burst 10",
    20,
    Target(share_429=0.05),
    rate_limit_per_minute=600.0,
    rate_limit_burst=10,
    rate_limit_schedule=((10.0, 120.0),),
)

SCENARIOS: list[Scenario] = [
    BUCKET,
    STRICT,
    FALLING,
    Scenario(
        "unlimited",
        "no limit",
        ServerSpec(days=30, tasks_per_day=1_000),
        Target(span_over_bound=1.3),
    ),
    BUCKET_HEADERS,
    STRICT_HEADERS,
    FALLING_HEADERS,
    Scenario(
        "large-day",
        "no limit, one day of 100,000 tasks",
        ServerSpec(days=1, tasks_per_day=100_000),
        Target(peak_rss_mb=300),
        baseline=False,
    ),
]
"""Every scenario ``make bench`` runs, in order; the loads are 1,000 tasks (10 pages) a day.

The rate-limited loads are a few hundred requests: the first 429s, while the client finds
a limit, are a handful, and the 429 share only means something over a longer run."""


# -- orchestration (the parent process) ----------------------------------------------------


class Simulator:
    """The simulated API in its own process, driven by commands on its stdin."""

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
        """Send one command line (``reset`` / ``served``) and return its answer."""
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
    return IngestResult(**run_child(__file__, "_ingest", spec, Path(spec.workdir) / "ingest.log"))


def measure(scenario: Scenario, concurrency: int | None, simulator: Simulator) -> IngestResult:
    """One run of ``scenario`` (``concurrency`` None: the default) on a fresh limiter."""
    simulator.command("reset")
    server = scenario.server
    last = date.fromisoformat(server.start_date) + timedelta(days=server.days - 1)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as workdir:
        result = run_ingest(
            IngestSpec(
                base_url=simulator.base_url,
                first_day=server.start_date,
                last_day=last.isoformat(),
                concurrency=concurrency,
                workdir=workdir,
            )
        )
    result.served = json.loads(simulator.command("served"))
    expected = server.days * server.tasks_per_day
    if not result.rows == result.distinct_ids == expected:
        raise RuntimeError(
            f"scenario {scenario.name}: landed {result.rows} rows / {result.distinct_ids} "
            f"ids, expected {expected} tasks exactly once"
        )
    return result


def span_ratio(server: ServerSpec, result: IngestResult) -> float:
    bound = server.bound_seconds(int(result.served["pages"]), result.concurrency)
    return result.served["span_seconds"] / bound


COLUMNS = (
    ("run", 12),
    ("bound", 8),
    ("API span", 9),
    ("span/bound", 10),
    ("wall", 8),
    ("requests", 8),
    ("429s", 11),
    ("early", 5),
    ("peak RSS", 8),
)


def header() -> str:
    return "  " + " ".join(f"{name:>{width}}" for name, width in COLUMNS)


def row(scenario: Scenario, label: str, result: IngestResult) -> str:
    served = result.served
    bound = scenario.server.bound_seconds(int(served["pages"]), result.concurrency)
    cells = (
        f"{label} ({result.concurrency})",
        f"{bound:.1f} s",
        f"{served['span_seconds']:.1f} s",
        f"{served['span_seconds'] / bound:.2f}",
        f"{result.wall_seconds:.1f} s",
        f"{int(served['requests'])}",
        f"{int(served['rate_limited'])} ({result.share_429:.1%})",
        f"{int(served['early_retries'])}",
        f"{result.peak_rss_mb:.0f} MB",
    )
    return "  " + " ".join(
        f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print their figures and targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a third of every load")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.name for s in SCENARIOS],
        help="run only these (repeatable)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the concurrency-1 runs")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)

    chosen = [
        s.quick() if args.quick else s
        for s in SCENARIOS
        if not args.scenario or s.name in args.scenario
    ]
    print(f"topo_pipeline ingestion benchmark ({'quick' if args.quick else 'full'})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), {sys.platform}")
    print(f"every run at the defaults (no TOPO_API_* tuning variables), {LATENCY * 1000:.0f} ms")
    print("per request; in parentheses the page concurrency; early = retried before Retry-After")
    everything: dict[str, Any] = {}
    verdicts: list[str] = []
    started = time.monotonic()
    for scenario in chosen:
        server = scenario.server
        load = f"{server.days} days x {server.tasks_per_day:,} tasks"
        print(f"\n{scenario.name}: {scenario.title}; {load}")
        print(header())
        sys.stdout.flush()
        runs: dict[str, Any] = {}
        with Simulator(server) as simulator:
            main_run = measure(scenario, None, simulator)
            print(row(scenario, "default", main_run), flush=True)
            runs["default"] = asdict(main_run)
            if scenario.baseline and not args.no_baseline:
                baseline = measure(scenario, 1, simulator)
                print(row(scenario, "baseline", baseline), flush=True)
                runs["baseline"] = asdict(baseline)
                speedup = baseline.wall_seconds / main_run.wall_seconds
                print(f"  speed-up vs concurrency 1: {speedup:.2f}x (wall time)")
        if server.rate_limit_per_minute is None and server.days > 1:
            previous = main_run.served["pages"] * 60.0 / PREVIOUS_DEFAULT_RPM
            print(
                f"  the previous default ({PREVIOUS_DEFAULT_RPM:.0f} requests/min, evenly "
                f"spaced) needs at least {previous:.1f} s of API span here: "
                f"{previous / main_run.served['span_seconds']:.1f}x this run's"
            )
        met, text = scenario.target.check(server, main_run)
        verdicts.append(f"{scenario.name:<16} {'met   ' if met else 'MISSED'} {text}")
        everything[scenario.name] = runs
    print("\nTargets (issue #9; the default run of each scenario):")
    if args.quick:
        print("  (--quick: a third of each load; the targets are set for the full loads)")
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

    raw = json.loads(raw_spec)
    raw["rate_limit_schedule"] = tuple(tuple(step) for step in raw["rate_limit_schedule"])
    spec = ServerSpec(**raw)
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
        rate_limiter=spec.rate_limiter,  # type: ignore[arg-type]
        rate_limit_burst=spec.rate_limit_burst,
        rate_limit_schedule=spec.rate_limit_schedule,
        rate_limit_headers=spec.rate_limit_headers,  # type: ignore[arg-type]
    )
    with SimulatedTopoApi(TaskStore(data.tasks, data.sequence_templates), faults=plan) as api:
        del data
        print(api.base_url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                api.faults = plan  # a fresh limiter, as for a client that was idle a while
                api.clear_requests()
                print("ok", flush=True)
            elif command == "served":
                print(json.dumps(served_figures(api.requests)), flush=True)
            else:
                print(f"unknown command {command!r}", flush=True)
    return 0


def served_figures(records: list[Any]) -> dict[str, float]:
    """What the simulator saw of one run: requests, pages, 429s, early retries, API span."""
    by_request: dict[tuple[str, ...], list[Any]] = collections.defaultdict(list)
    for record in records:
        key = tuple(record.params.get(name, [""])[0] for name in ("created_at_after", "page"))
        by_request[key].append(record)
    early = 0
    for attempts in by_request.values():
        attempts.sort(key=lambda r: r.received_at)
        for earlier, later in itertools.pairwise(attempts):
            if earlier.status == 429 and earlier.retry_after is not None:
                early += later.received_at < earlier.answered_at + earlier.retry_after
    return {
        "requests": len(records),
        "pages": sum(1 for r in records if r.status == 200),
        "rate_limited": sum(1 for r in records if r.status == 429),
        "early_retries": early,
        "span_seconds": (
            max(r.answered_at for r in records) - min(r.received_at for r in records)
            if records
            else 0.0
        ),
    }


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
    # The environment a new user has: where the API and the files are, no tuning.
    environ = {
        "TOPO_API_BASE_URL": spec.base_url,
        "TOPO_DUCKDB_PATH": str(workdir / "pipeline.duckdb"),
        "TOPO_ANALYST_DUCKDB_PATH": str(workdir / "analyst.duckdb"),
        "TOPO_START_DATE": spec.first_day,
    }
    if spec.concurrency is not None:
        environ["TOPO_API_CONCURRENCY"] = str(spec.concurrency)
    settings = Settings.from_env(environ)
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
    report(outcome)
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
