"""The code location: ``defs`` is what ``workspace.yaml``, ``dg dev`` and ``dg launch`` load.

Settings are read from the ``TOPO_*`` environment when this module is imported; a bad
value stops the code location from loading with a message naming the variable. Code that
builds definitions for other settings (tests, ``make demo``) calls :func:`build_defs`.
"""

import os

import topo_pipeline.dagster_warnings  # noqa: F401 - first: filters the beta warnings we expect
from topo_pipeline.api.errors import TopoConfigError
from topo_pipeline.defs.console import brief_load_error
from topo_pipeline.defs.location import build_defs
from topo_pipeline.settings import Settings

PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"

__all__ = ["build_defs", "defs"]

# A run over a range of days records one "planned" event per asset, not one per day of
# every asset (Dagster's default, the unpartitioned assets of the run included), in every
# process that loads the code location (CLI runs, code servers); `make` sets it for the
# webserver and daemon too. Why and what it costs: docs/operating.md, "Partitions".
os.environ.setdefault(PLANNED_EVENTS_ENV, "1")

try:
    _settings = Settings.from_env()
except TopoConfigError as error:
    brief_load_error(error)  # on the command line: one paragraph, not a traceback
    raise

defs = build_defs(_settings)
