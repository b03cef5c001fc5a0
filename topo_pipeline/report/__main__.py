"""``python -m topo_pipeline.report`` (``make report``): rebuild the SLA report without a run.

Reads the analyst copy (``TOPO_ANALYST_DUCKDB_PATH``) and writes ``TOPO_REPORT_PATH``, with
the ``TOPO_*`` settings of the environment and the checkout's ``.env``; the business hours
shown are those the tables were built with (``analytics.builds``). ``--source`` and
``--output`` override the two paths. Exits 1 when there is nothing to report on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from topo_pipeline.api.errors import TopoError
from topo_pipeline.env_file import load_env_file
from topo_pipeline.report.build import describe_business_hours, write_report
from topo_pipeline.report.data import ReportError
from topo_pipeline.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Write the report; return the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m topo_pipeline.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--source", type=Path, help="analyst copy (TOPO_ANALYST_DUCKDB_PATH)")
    parser.add_argument("--output", type=Path, help="HTML file to write (TOPO_REPORT_PATH)")
    args = parser.parse_args(argv)
    load_env_file()  # the checkout's settings, as make demo and Dagster's commands read them
    try:
        settings = Settings.from_env()
    except TopoError as error:
        print(f"configuration error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        result = write_report(
            args.source or settings.analyst_duckdb_path,
            args.output or settings.report_file,
            business_hours=describe_business_hours(settings.working_calendar(), settings.timezone),
            lock_timeout=settings.lock_timeout_seconds,
        )
    except (FileNotFoundError, ReportError) as error:
        print(f"no report: {error}", file=sys.stderr)  # noqa: T201
        return 1
    print(  # noqa: T201
        f"SLA report: {result.path} ({result.size_bytes / 1024:.0f} KB); open it in a browser"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
