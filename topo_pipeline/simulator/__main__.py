"""Run the simulated Topo API until SIGINT / SIGTERM.

    python -m topo_pipeline.simulator --port 8765 --seed 7 --days 14 --timezone UTC
    python -m topo_pipeline.simulator --rate-limit-per-minute 300 --rate-limit-burst 10 \
        --rate-limit-schedule 60:120 --rate-limit-headers ratelimit

It serves ``--days`` days of seeded tasks ending on ``--end-date`` (default: today in
``--timezone``) and prints one line with the base URL and the demo API key. When the
window reaches today, "now" is the simulated present: tasks are created up to now and
recent ones are still open. A window wholly in the past is reproducible from the seed.
With ``--live-tasks-per-hour N`` new tasks keep arriving "now" (and get worked, some late)
while it runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from topo_pipeline.simulator.dataset import DatasetSpec
from topo_pipeline.simulator.faults import FaultPlan
from topo_pipeline.simulator.generation import generate_dataset
from topo_pipeline.simulator.live import LiveTraffic
from topo_pipeline.simulator.server import DEMO_API_KEY, SimulatedTopoApi
from topo_pipeline.simulator.store import TaskStore


class NotLoopbackError(ValueError):
    """The simulator was asked to serve on an address other than loopback."""


def check_loopback(host: str) -> None:
    """Refuse to serve on ``host`` unless it is loopback (``127.0.0.0/8``, ``::1``, localhost).

    The simulator speaks plain HTTP and knows its API keys: it serves this machine only.

    Raises:
        NotLoopbackError: naming the host.
    """
    if host.lower() == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass  # a name other than localhost, or no address at all
    raise NotLoopbackError(f"--host {host!r} is not a loopback address (e.g. 127.0.0.1)")


def argument_parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--live-tasks-per-hour",
        type=float,
        default=0.0,
        help="new tasks an hour created as time passes, from now on (default 0: none)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument(
        "--rate-limit-per-minute", type=float, help="429 above this rate (default: unlimited)"
    )
    parser.add_argument(
        "--rate-limiter",
        choices=("token_bucket", "sliding_window"),
        default="token_bucket",
        help="how the limit is enforced (default: token_bucket)",
    )
    parser.add_argument(
        "--rate-limit-burst", type=int, help="token bucket capacity (default: a minute's worth)"
    )
    parser.add_argument(
        "--rate-limit-window",
        type=float,
        help="sliding window length in seconds (default: 60 / limit, i.e. no burst)",
    )
    parser.add_argument(
        "--rate-limit-schedule",
        type=_schedule,
        default=(),
        metavar="S:N[,S:N...]",
        help="the limit becomes N/min S seconds after the first request, e.g. 20:120",
    )
    parser.add_argument(
        "--rate-limit-headers",
        choices=("ratelimit", "x-ratelimit"),
        help="send RateLimit-* or X-RateLimit-* headers on every answer",
    )
    parser.add_argument(
        "--retry-after-format",
        choices=("seconds", "http-date"),
        default="seconds",
        help="how a 429's Retry-After is written (default: seconds)",
    )
    parser.add_argument("--error-5xx-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped requests")
    parser.add_argument(
        "--unstable-tie-order",
        action="store_true",
        help="shuffle rows tied on the sort field on every request",
    )
    hostile = parser.add_argument_group("a hostile or broken API")
    hostile.add_argument(
        "--drip-seconds-per-byte", type=float, default=0.0, help="write answers byte by byte"
    )
    hostile.add_argument("--total-count", type=int, help="report this total_count whatever")
    hostile.add_argument(
        "--naive-timestamps", action="store_true", help="send timestamps without an offset"
    )
    hostile.add_argument(
        "--leak-outside-bounds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also serve tasks created this long before created_at_after",
    )
    hostile.add_argument(
        "--repeat-first-task",
        choices=["identical", "conflicting", "stale"],
        help="serve each query's first task again on its last page (see FaultPlan)",
    )
    hostile.add_argument(
        "--echo-key-in-401", action="store_true", help="answer 401 quoting the key sent"
    )
    return parser


def fault_plan(args: argparse.Namespace) -> FaultPlan:
    """The :class:`FaultPlan` the command line asks for."""
    return FaultPlan(
        latency_seconds=args.latency,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limiter=args.rate_limiter,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_window_seconds=args.rate_limit_window,
        rate_limit_schedule=args.rate_limit_schedule,
        rate_limit_headers=args.rate_limit_headers,
        retry_after_format=args.retry_after_format,
        error_5xx_rate=args.error_5xx_rate,
        drop_rate=args.drop_rate,
        unstable_tie_order=args.unstable_tie_order,
        drip_seconds_per_byte=args.drip_seconds_per_byte,
        total_count_override=args.total_count,
        naive_timestamps=args.naive_timestamps,
        leak_outside_bounds_seconds=args.leak_outside_bounds,
        echo_key_in_401=args.echo_key_in_401,
        repeat_first_task=args.repeat_first_task,
    )


def _schedule(text: str) -> tuple[tuple[float, float], ...]:
    """``"20:120,60:600"`` as ``((20.0, 120.0), (60.0, 600.0))``."""
    steps = []
    for part in text.split(","):
        seconds, _, per_minute = part.partition(":")
        try:
            steps.append((float(seconds), float(per_minute)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not SECONDS:PER_MINUTE (e.g. 20:120)"
            ) from None
    return tuple(steps)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve until a stop signal, return the exit status."""
    parser = argument_parser()
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except NotLoopbackError as error:
        parser.error(str(error))
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
        faults = fault_plan(args)
        if args.live_tasks_per_hour < 0:
            raise ValueError("--live-tasks-per-hour must be 0 or more")
    except (ValueError, KeyError) as exc:  # an unknown zone is a KeyError
        parser.error(str(exc))
    dataset = generate_dataset(spec)
    store = TaskStore(dataset.tasks, dataset.sequence_templates)
    stop = threading.Event()
    if args.live_tasks_per_hour:
        traffic = LiveTraffic(store, start=now, tasks_per_hour=args.live_tasks_per_hour)
        threading.Thread(target=traffic.run, args=(stop,), daemon=True).start()
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
