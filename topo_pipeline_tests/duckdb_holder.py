"""Hold a DuckDB file open in another process, as an analyst's session or a writer would.

DuckDB shares one database instance per file inside a process, so only a second process
shows what a real concurrent session sees. ``python -m topo_pipeline_tests.duckdb_holder
PATH ro|rw`` opens ``PATH``, prints ``ready <count> <fingerprint>`` of ``topo.tasks`` (read
through that one connection), and prints ``read ...`` again for every line on stdin.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SNAPSHOT_SQL = (
    "SELECT count(*), coalesce(sum(hash(id || '/' || status)), 0) FROM {catalog}.topo.tasks"
)


class Holder:
    """A child process holding a DuckDB file open; :meth:`read` queries it again."""

    def __init__(self, process: subprocess.Popen[str], first: tuple[int, int]) -> None:
        self.process = process
        self.first = first

    def read(self) -> tuple[int, int]:
        """``(rows, fingerprint)`` of ``topo.tasks`` through the connection held open."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("read\n")
        self.process.stdin.flush()
        return _parse(self.process.stdout.readline(), "read")


@contextmanager
def hold_duckdb(path: Path, *, read_only: bool) -> Iterator[Holder]:
    """Open ``path`` in a child process for the duration of the block."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", __name__, str(path), "ro" if read_only else "rw"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield Holder(process, _parse(process.stdout.readline(), "ready"))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _parse(line: str, tag: str) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 3 or parts[0] != tag:
        raise RuntimeError(f"holder process said {line!r}")
    return int(parts[1]), int(parts[2])


def _main(path: str, mode: str) -> None:
    import duckdb

    con = duckdb.connect(":memory:")
    options = " (READ_ONLY)" if mode == "ro" else ""
    con.execute(f"ATTACH ? AS held{options}", [path])

    def snapshot() -> str:
        try:
            count, fingerprint = con.execute(SNAPSHOT_SQL.format(catalog="held")).fetchone()
        except duckdb.CatalogException:
            count, fingerprint = 0, 0
        return f"{count} {fingerprint}"

    print("ready", snapshot(), flush=True)  # noqa: T201 - the protocol with the parent
    for _line in sys.stdin:
        print("read", snapshot(), flush=True)  # noqa: T201


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
