"""Run the simulated Topo API until SIGINT / SIGTERM.

    python -m topo_pipeline.simulator --port 8765 --seed 7 --days 14 --timezone UTC

It serves ``--days`` days of seeded tasks ending on ``--end-date`` (default: today in
``--timezone``) and prints one line with the base URL and the demo API key. When the
window reaches today, "now" is the simulated present: tasks are created up to now and
recent ones are still open. A window wholly in the past is reproducible from the seed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from topo_pipeline.api.client import validate_base_url
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.simulator.dataset import DatasetSpec, generate_dataset
from topo_pipeline.simulator.faults import FaultPlan
from topo_pipeline.simulator.server import DEMO_API_KEY, SimulatedTopoApi
from topo_pipeline.simulator.store import TaskStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m topo_pipeline.simulator",
        description="Serve a simulated Topo GET /v1/tasks on a loopback address.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (0: any free)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data set")
    parser.add_argument("--days", type=int, default=14, help="days of tasks to serve")
    parser.add_argument(
        "--end-date", type=date.fromisoformat, help="last day, YYYY-MM-DD (default: today)"
    )
    parser.add_argument("--timezone", default="UTC", help="IANA zone of the calendar days")
    parser.add_argument(
        "--tasks-per-day", type=int, help="pin every day to this many tasks (default: varies)"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--rate-limit-per-minute", type=float, help="429 above this rate (default: unlimited)"
    )
    parser.add_argument("--error-5xx-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped requests")
    parser.add_argument(
        "--unstable-tie-order",
        action="store_true",
        help="shuffle rows tied on the sort field on every request",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until a stop signal, return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    try:
        validate_base_url(f"http://{url_host}:{args.port}/v1")
    except TopoConfigError:
        parser.error(f"--host {args.host!r} is not a loopback address (e.g. 127.0.0.1)")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        today = now.astimezone(ZoneInfo(args.timezone)).date()
        end_date = args.end_date or today
        spec = DatasetSpec(
            seed=args.seed,
            start_date=end_date - timedelta(days=args.days - 1),
            days=args.days,
            tasks_per_day=None if args.tasks_per_day is None else [args.tasks_per_day] * args.days,
            timezone=args.timezone,
            # A window that reaches today ends now; one wholly in the past is reproducible.
            as_of=now if end_date >= today else None,
        )
        faults = FaultPlan(
            latency_seconds=args.latency,
            rate_limit_per_minute=args.rate_limit_per_minute,
            error_5xx_rate=args.error_5xx_rate,
            drop_rate=args.drop_rate,
            unstable_tie_order=args.unstable_tie_order,
        )
    except (ValueError, KeyError) as exc:  # an unknown zone is a KeyError
        parser.error(str(exc))
    dataset = generate_dataset(spec)
    store = TaskStore(dataset.tasks, dataset.sequence_templates)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SimulatedTopoApi(store, faults=faults, host=args.host, port=args.port) as api:
        sys.stdout.write(
            f"Simulated Topo API: TOPO_API_BASE_URL={api.base_url} TOPO_API_KEY={DEMO_API_KEY}"
            f" ({len(store)} tasks, {spec.start_date}..{end_date} in {args.timezone};"
            " Ctrl-C stops)\n"
        )
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
