"""The code location: ``defs`` is what ``workspace.yaml`` and ``dagster dev`` load.

Settings are read from the ``TOPO_*`` environment when this module is imported; a bad
value stops the code location from loading with a message naming the variable. Code that
builds definitions for other settings (tests, ``make demo``) calls :func:`build_defs`.
"""

from topo_pipeline.defs.location import build_defs
from topo_pipeline.settings import Settings

__all__ = ["build_defs", "defs"]

defs = build_defs(Settings.from_env())
