"""The SLA report: one self-contained HTML page for managers, built from the analyst copy.

:func:`write_report` reads a published DuckDB file and writes the page atomically; the
``report/sla_report`` asset (:mod:`topo_pipeline.defs.assets.report`) calls it after every
publish, and ``python -m topo_pipeline.report`` (``make report``) without a run. The page
shows headline tiles, weekly charts (inline SVG drawn by :mod:`.charts`: no script, nothing
fetched when viewed), assignees worst first, HOT tasks at risk and what changed since the
last report. Nothing here imports Dagster.
"""

from topo_pipeline.report.build import ReportResult, write_report
from topo_pipeline.report.data import ReportError

__all__ = ["ReportError", "ReportResult", "write_report"]
