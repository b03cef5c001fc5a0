"""Helpers for tests that start Dagster as real processes: ports, process groups, leftovers,
the instance folder they share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from unittest import mock

import dagster as dg

from topo_pipeline.instance import DAGSTER_HOME_ENV, INSTANCE_YAML, prepare_dagster_home
from topo_pipeline.liveness import Owner, owner_of


@contextlib.contextmanager
def instance_at(
    home: str | Path, instance_env: Mapping[str, str] | None = None
) -> Iterator[dg.DagsterInstance]:
    """The instance in ``home`` as the processes given ``DAGSTER_HOME=home`` open it.

    The event log storage of the repository's ``dagster.yaml`` finds its files through
    ``DAGSTER_HOME``, as Dagster's CLI, webserver and daemon all set it. ``instance_env``
    holds the other variables the instance's settings read (``DAGSTER_PG_URL`` for
    ``deploy/postgres/dagster.yaml``).
    """
    with (
        mock.patch.dict(os.environ, {DAGSTER_HOME_ENV: str(home), **(instance_env or {})}),
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):
        yield instance


def create_instance_storage(
    home: str | Path, instance_env: Mapping[str, str] | None = None
) -> None:
    """Create the storage of the instance in ``home`` before processes share it.

    Dagster processes starting together on a new instance (webserver and daemon, CLI
    runs) can race creating its databases ("table alembic_version already exists").
    """
    with instance_at(home, instance_env):
        pass


def shell_env() -> dict[str, str]:
    """This process's environment without any ``TOPO_*`` or ``DAGSTER_*`` variable: the
    shell of a user who set none, whatever the shell running the tests has set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TOPO_", "DAGSTER_"))}


def deployment_env(
    home: Path,
    *,
    instance_yaml: Path = INSTANCE_YAML,
    instance_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """:func:`shell_env` with ``DAGSTER_HOME=home``, prepared as ``make dev`` does (the
    repository's ``dagster.yaml``) and its storage created (:func:`create_instance_storage`).

    ``instance_yaml`` installs other instance settings instead
    (``deploy/postgres/dagster.yaml``), and ``instance_env`` adds the variables they read.
    """
    env = shell_env()
    env[DAGSTER_HOME_ENV] = str(home)
    env.update(instance_env or {})
    prepare_dagster_home(env, source=instance_yaml)
    create_instance_storage(home, instance_env)
    return env


def cli_materialize(
    env: Mapping[str, str],
    log: Path,
    select: str,
    *,
    partition: str | None = None,
    partition_range: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``dagster asset materialize`` of ``select`` as a user would, in ``log``'s folder.

    Its output goes to ``log``; it runs in a session of its own (``os.killpg`` its pid to
    kill it with the run it executes). ``partition_range`` is ``first...last``.
    """
    argv = [
        venv_executable("dagster"),
        *("asset", "materialize", "-m", "topo_pipeline.definitions", "--select", select),
    ]
    if partition is not None:
        argv += ["--partition", partition]
    if partition_range is not None:
        argv += ["--partition-range", partition_range]
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=log.parent,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_executable(name: str) -> str:
    """A console script installed next to this interpreter (``dagster-webserver``, ...)."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is not installed next to {sys.executable}"
    return path


def group_alive(pgid: int) -> bool:
    """True while any process (a zombie included) is left in the process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def pids_using_home(home: Path) -> list[int]:
    """Processes whose environment carries ``DAGSTER_HOME=<home>`` (unique per test)."""
    marker = f"DAGSTER_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_groups(
    leaders: Sequence[subprocess.Popen[bytes]],
    home: Path,
    *,
    first: signal.Signals = signal.SIGTERM,
    grace: float = 30.0,
) -> list[int]:
    """Stop each leader's process group (``first``, then SIGKILL after ``grace`` s).

    Each leader must have been started with ``start_new_session=True``, so its children
    (code servers, run workers) share its group. Returns the pids of processes that still
    carried ``DAGSTER_HOME=<home>`` afterwards (they are killed too); none is expected.
    """
    groups = [leader.pid for leader in leaders]

    def any_alive() -> bool:
        for leader in leaders:
            leader.poll()  # reap the leader, or its group never looks empty
        return any(group_alive(g) for g in groups)

    for pgid in groups:
        signal_group(pgid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any_alive():
        time.sleep(0.2)
    for pgid in groups:
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
    for leader in leaders:
        try:
            leader.wait(timeout=10)
        except subprocess.TimeoutExpired:
            leader.kill()
    stragglers = pids_using_home(home) if Path("/proc").is_dir() else []
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stragglers


def killed_process_owner() -> Owner:
    """A process that ran and was killed with SIGKILL (what a dead run leaves behind)."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        owner = owner_of(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert owner is not None
    return owner
