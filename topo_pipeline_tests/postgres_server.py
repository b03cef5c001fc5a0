"""A throwaway PostgreSQL server on loopback, for the tests and the benchmarks.

:func:`throwaway_postgres` runs ``initdb`` into a new temporary folder, starts
``postgres`` on a free port of 127.0.0.1 (TCP only, no Unix socket) and stops it and
removes the folder when the block ends. PostgreSQL refuses to run as root, and the tests
and CI do run as root: as root the server runs as the unprivileged user ``nobody``
(every Debian system has it), through ``setpriv`` (util-linux, on every Debian system);
the folder is created by root and handed to that user. As any other user it runs as that
user. Nothing is installed and no system file is changed.

The binaries are found under ``/usr/lib/postgresql/<version>/bin`` (Debian's
``postgresql`` package), then on ``PATH``; :func:`postgres_binaries` is ``None`` where
they are absent, and the tests then skip saying so.

Used by ``topo_pipeline_tests/test_postgres_instance.py`` (a Dagster instance on
``deploy/postgres/dagster.yaml``) and ``bench/warehouse_bench.py --instance postgres``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from topo_pipeline.instance import REPO_ROOT
from topo_pipeline_tests.processes import free_port

POSTGRES_INSTANCE_YAML = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"
"""The instance settings on PostgreSQL storage (the repository's ``dagster.yaml`` otherwise)."""

PG_URL_ENV = "DAGSTER_PG_URL"
"""The variable :data:`POSTGRES_INSTANCE_YAML` reads the server's URL from."""

SERVER_USER_AS_ROOT = "nobody"
"""Who runs the server when the tests run as root."""

DB_USER = "dagster"
"""The server's superuser (``initdb -U``), trusted on loopback without a password."""

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0

# A throwaway server need not survive a crash of the machine: without these a test's
# thousands of small commits each wait for the disk.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, newest version first; ``None`` if none."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


@dataclass(frozen=True)
class PostgresServer:
    """A running server on loopback, its superuser :data:`DB_USER` trusted without a password."""

    port: int
    folder: Path
    """Its data folder and log, removed when the server stops."""
    host: str = "127.0.0.1"
    user: str = DB_USER

    def url(self, database: str = "postgres") -> str:
        """``DAGSTER_PG_URL`` for ``database``: ``postgresql+psycopg2://dagster@127.0.0.1:<port>/<database>``.

        The driver is named: SQLAlchemy 2.1 reads a plain ``postgresql://`` as psycopg 3,
        which ``dagster-postgres`` does not install (it installs psycopg2).
        """
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        """The same as a libpq URL (``psql``, ``psycopg2.connect``)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a plain identifier); its :meth:`url`."""
        if not name.isidentifier():
            raise ValueError(f"not a plain identifier: {name!r}")
        connection = psycopg2.connect(self.libpq_url())
        try:
            connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def throwaway_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a new server in a temporary folder; stop it and remove the folder afterwards.

    Args:
        durable: keep PostgreSQL's default durability (``fsync``, synchronous commits), as
            a deployment runs it; by default these are off, which tests can afford.

    Raises:
        RuntimeError: the binaries are missing, or the server did not start (its log's
            tail is in the message).
    """
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL binaries (initdb, postgres) not found")
    as_user = _unprivileged_prefix()
    folder = Path(tempfile.mkdtemp(prefix="topo-postgres-"))
    try:
        if as_user:
            record = pwd.getpwnam(SERVER_USER_AS_ROOT)
            os.chown(folder, record.pw_uid, record.pw_gid)
        _initdb(binaries, as_user, folder)
        server, process = _start(binaries, as_user, folder, durable)
        try:
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _initdb(binaries: Path, as_user: list[str], folder: Path) -> None:
    """A new cluster in ``folder/data``: superuser :data:`DB_USER`, trusted on loopback."""
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [
            *as_user,
            str(binaries / "initdb"),
            *("-D", str(folder / "data"), "-U", DB_USER, "-A", "trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        ],
        env=_server_env(),
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")
        raise RuntimeError(f"initdb failed (exit {done.returncode}):\n{output}")


def _unprivileged_prefix() -> list[str]:
    """The command prefix that drops root to :data:`SERVER_USER_AS_ROOT`; none for others."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root needs setpriv (util-linux) to start PostgreSQL")
    record = pwd.getpwnam(SERVER_USER_AS_ROOT)
    return [
        setpriv,
        *(f"--reuid={record.pw_uid}", f"--regid={record.pw_gid}", "--clear-groups"),
    ]


def _server_env() -> dict[str, str]:
    """A clean environment: root's (``HOME=/root``, ``PG*`` variables) is none of its business."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C", "LC_ALL": "C", "TZ": "UTC"}


def _start(
    binaries: Path, as_user: list[str], folder: Path, durable: bool
) -> tuple[PostgresServer, subprocess.Popen[bytes]]:
    """``postgres`` in the foreground on a free loopback port (a few tries if one was taken)."""
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",
        # The webserver, the daemon, run workers and CLI runs each open connections.
        "max_connections": "200",
        **({} if durable else _FAST_SETTINGS),
    }
    for _attempt in range(3):
        server = PostgresServer(port=free_port(), folder=folder)
        options = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
        with server.log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    *as_user,
                    str(binaries / "postgres"),
                    *("-D", str(folder / "data"), "-p", str(server.port), *options),
                ],
                env=_server_env(),
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for pytest does not stop it mid-test.
                start_new_session=True,
            )
        if _wait_until_ready(server, process):
            return server, process
        _stop(process)
        if "could not bind" not in server.log_tail():
            break
    raise RuntimeError(f"PostgreSQL did not start; its log:\n{server.log_tail()}")


def _wait_until_ready(server: PostgresServer, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            psycopg2.connect(server.libpq_url(), connect_timeout=5).close()
        except psycopg2.OperationalError:
            time.sleep(0.1)
        else:
            return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: clients disconnected, no wait), then SIGKILL if it hangs.

    The server's own processes exit with it (the postmaster is the group's leader).
    """
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
