"""``make dev``: the Dagster UI (webserver and daemon) on this project, in the foreground.

    python -m topo_pipeline.dev [--host 127.0.0.1] [--port 3000] [--sim-days 14]

Prepares ``$DAGSTER_HOME`` with the repository's ``dagster.yaml``; unless ``TOPO_API_KEY``
is set, starts the simulated Topo API with ``--sim-days`` days of tasks up to now, new
tasks arriving "now" (``--sim-tasks-per-hour``, so the live refresh and the SLA
notifications have work), and points the ``TOPO_API_*`` settings at it; then runs ``dg
dev`` until Ctrl-C and exits 0. In a terminal it takes the terminal's foreground while it
runs, so Ctrl-C reaches it alone and ``make dev`` ends without an error (why:
``docs/design.md``, "``make dev``"). The API key is never printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

import httpx

from topo_pipeline.api.errors import TopoError
from topo_pipeline.env_file import load_env_file
from topo_pipeline.instance import REPO_ROOT, prepare_dagster_home
from topo_pipeline.settings import API_KEY_ENV, Settings
from topo_pipeline.simulator import (
    DEMO_API_KEY,
    DatasetSpec,
    LiveTraffic,
    SimulatedTopoApi,
    TaskStore,
    generate_dataset,
)

SHUTDOWN_GRACE_SECONDS = 30.0
"""How long ``dg dev`` gets to stop its webserver, daemon and code servers."""
READY_TIMEOUT_SECONDS = 300.0
EXAMPLE_ASSIGNEES = REPO_ROOT / "examples" / "assignees.csv"
"""Names the simulated data set's assignees (the default seed's)."""


STOPPED = 0
"""The exit status after Ctrl-C or SIGTERM: the stop was asked for, so it is no failure."""


def main(argv: list[str] | None = None) -> int:
    """Run the UI until Ctrl-C; return the process exit status (:data:`STOPPED` then)."""
    args = _parser().parse_args(argv)
    # A shell starts background jobs with SIGINT ignored, and children inherit that; make
    # Ctrl-C (and dg dev's SIGTERM handling, which reuses SIGINT's) work regardless.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with _terminal_interrupts_this_process_alone():
        try:
            return _serve(args.host, args.port, args.sim_days, args.sim_tasks_per_hour)
        except KeyboardInterrupt:  # before dg dev started: nothing else to stop
            return STOPPED


@contextmanager
def _terminal_interrupts_this_process_alone() -> Iterator[None]:
    """Make this process the only one Ctrl-C reaches, while the block runs (module docstring).

    Without a controlling terminal, or when not in its foreground (a background job, a
    test, a service), nothing changes.
    """
    try:
        terminal = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield
        return
    try:
        foreground = os.tcgetpgrp(terminal)
        if foreground != os.getpgrp():
            yield
            return
        if os.getpgrp() != os.getpid():
            os.setpgid(0, 0)
        previous_tstp = signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        _hand_terminal_to(terminal, os.getpgrp())
        try:
            yield
        finally:
            with suppress(OSError):  # that group may be gone
                _hand_terminal_to(terminal, foreground)
            signal.signal(signal.SIGTSTP, previous_tstp)
    finally:
        os.close(terminal)


def _hand_terminal_to(terminal: int, group: int) -> None:
    """Make ``group`` the foreground process group of ``terminal``."""
    # A process outside the foreground group that changes it gets SIGTTOU, which would stop it.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(terminal, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _serve(host: str, port: int, sim_days: int, tasks_per_hour: float) -> int:
    home = prepare_dagster_home()
    _say(home.describe())
    # As dg dev does for its processes: the same settings as make demo and the CLI.
    loaded = load_env_file(REPO_ROOT)
    if loaded:
        _say(f"Settings from .env: {', '.join(sorted(loaded))}")
    try:
        settings = Settings.from_env()
    except TopoError as error:
        _say(f"configuration error: {error}", error=True)
        return 2
    with ExitStack() as stack:
        if _api_key_set(os.environ):
            _say(f"Topo API: {settings.base_url} (key from {API_KEY_ENV}, not shown)")
        else:
            spec = _simulated_data(settings.timezone, sim_days)
            api = stack.enter_context(_simulator(spec, tasks_per_hour))
            _use_simulator(os.environ, api.base_url, spec.start_date)
            _say(
                f"{API_KEY_ENV} is not set: simulated Topo API at {api.base_url} with "
                f"{len(api.store)} tasks from {spec.start_date} to now ({settings.timezone}); "
                f"about {tasks_per_hour:g} new tasks an hour arrive"
            )
            try:
                settings = Settings.from_env()
            except TopoError as error:
                _say(f"configuration error: {error}", error=True)
                return 2
        _say(
            f"Pipeline DuckDB file: {settings.duckdb_path}; "
            f"analyst copy: {settings.analyst_duckdb_path}"
        )
        return _run_dagster_dev(host, port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m topo_pipeline.dev",
        description="Run the Dagster webserver and daemon on this project (Ctrl-C stops).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="webserver host")
    parser.add_argument("--port", type=int, default=3000, help="webserver port")
    parser.add_argument(
        "--sim-days",
        type=_positive_int,
        default=14,
        help="days of simulated tasks, ending today (only without TOPO_API_KEY)",
    )
    parser.add_argument(
        "--sim-tasks-per-hour",
        type=_non_negative_float,
        default=60.0,
        help="new simulated tasks an hour, created as time passes (0: none)",
    )
    return parser


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _api_key_set(environ: MutableMapping[str, str]) -> bool:
    return bool(environ.get(API_KEY_ENV, "").strip())


def _simulated_data(timezone: str, days: int) -> DatasetSpec:
    """``days`` days of seeded tasks ending today in ``timezone``, up to now."""
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.astimezone(ZoneInfo(timezone)).date()
    return DatasetSpec(
        start_date=today - timedelta(days=days - 1),
        days=days,
        timezone=timezone,
        as_of=now,  # tasks exist up to now and recent ones are still open
    )


@contextmanager
def _simulator(spec: DatasetSpec, tasks_per_hour: float) -> Iterator[SimulatedTopoApi]:
    """The simulated API serving ``spec``'s tasks on a free loopback port, with new tasks
    arriving (and being worked) as the wall clock moves."""
    dataset = generate_dataset(spec)
    with SimulatedTopoApi(TaskStore(dataset.tasks, dataset.sequence_templates)) as api:
        traffic = LiveTraffic(
            api.store, start=spec.effective_as_of(), tasks_per_hour=tasks_per_hour
        )
        stop = threading.Event()
        worker = threading.Thread(target=traffic.run, args=(stop,), daemon=True)
        worker.start()
        try:
            yield api
        finally:
            stop.set()
            worker.join(timeout=5)


def _use_simulator(environ: MutableMapping[str, str], base_url: str, first_day: date) -> None:
    """Point the pipeline at the simulator, whose data starts on ``first_day``."""
    environ["TOPO_API_BASE_URL"] = base_url
    environ[API_KEY_ENV] = DEMO_API_KEY
    if not environ.get("TOPO_START_DATE", "").strip():
        environ["TOPO_START_DATE"] = first_day.isoformat()
    if not environ.get("TOPO_ASSIGNEES_PATH", "").strip():
        environ["TOPO_ASSIGNEES_PATH"] = str(EXAMPLE_ASSIGNEES)


def _run_dagster_dev(host: str, port: int) -> int:
    """Run ``dg dev`` in the foreground; stop it cleanly on Ctrl-C or SIGTERM."""
    url = f"http://{host}:{port}"
    command = _dagster_dev_command(host, port)
    env = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    _say(f"Starting the Dagster webserver and daemon; the UI will be at {url} (Ctrl-C stops)")
    # Its own process group, shared with the webserver, daemon, code servers and run
    # workers it starts: Ctrl-C is passed on to all of them, and if they do not stop,
    # the whole group is ended, so nothing is left behind.
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, process_group=0)  # noqa: S603
    stopped = threading.Event()
    threading.Thread(
        target=_announce_when_ready, args=(_probe_url(host, port), url, stopped), daemon=True
    ).start()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        _say("Stopping Dagster ...")
        _stop_group(process, (signal.SIGINT, signal.SIGTERM, signal.SIGKILL))
        _say("Stopped")
        return STOPPED
    finally:
        stopped.set()
        signal.signal(signal.SIGTERM, previous)
    # dg dev ended by itself (an error); end whatever it left running.
    _stop_group(process, (signal.SIGTERM, signal.SIGKILL))
    return returncode


def _dagster_dev_command(host: str, port: int) -> list[str]:
    """``dg dev`` on ``host:port``.

    It reads the project from pyproject.toml (``[tool.dg]``) and runs the code location in
    this virtual environment, which it is told is the project's.
    """
    return [str(Path(sys.executable).parent / "dg"), "dev", "-h", host, "-p", str(port)]


def _stop_group(process: subprocess.Popen[bytes], signals: tuple[signal.Signals, ...]) -> None:
    """Send ``signals`` in turn to ``process``'s group until every process in it exited."""
    group = process.pid
    for number, sig in enumerate(signals):
        if number:
            _say(f"Dagster is still running; sending {sig.name}", error=True)
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        try:
            process.wait(timeout=SHUTDOWN_GRACE_SECONDS)
            if not _group_alive(group, SHUTDOWN_GRACE_SECONDS):
                return
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue  # another Ctrl-C: escalate without waiting out the grace period


def _group_alive(group: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for every process of ``group`` to exit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.2)


def _probe_url(host: str, port: int) -> str:
    # A webserver bound to every interface still answers on loopback.
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
    if ":" in probe_host:
        probe_host = f"[{probe_host}]"
    return f"http://{probe_host}:{port}/server_info"


def _announce_when_ready(probe: str, url: str, stopped: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not stopped.is_set() and time.monotonic() < deadline:
        try:
            if httpx.get(probe, timeout=2.0).status_code == 200:
                _say(f"Dagster UI ready: {url}")
                return
        except httpx.HTTPError:
            pass
        stopped.wait(1.0)


def _say(message: str, *, error: bool = False) -> None:
    stream = sys.stderr if error else sys.stdout
    stream.write(f"[make dev] {message}\n")
    stream.flush()


if __name__ == "__main__":
    sys.exit(main())
