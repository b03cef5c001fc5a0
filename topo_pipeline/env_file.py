"""The checkout's ``.env``: one set of settings for every entry point.

Dagster's commands (``dg dev``, ``dg launch``, ``dagster asset materialize``, ``dagster
dev``) load ``.env`` from the directory they run in, its values over the shell's;
``make demo`` and ``make dev`` load the same file the same way, so the UI, the CLI and the
demo build the tables with the same settings. ``make demo`` writes the file when there is
none, for the simulated API; for Topo, edit it (README, "Configuration").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from dotenv import dotenv_values

from topo_pipeline.instance import REPO_ROOT

ENV_FILE_NAME = ".env"
EXAMPLES = REPO_ROOT / "examples"

DEMO_SETTINGS: Mapping[str, str] = {
    "TOPO_ASSIGNEES_PATH": str(EXAMPLES / "assignees.csv"),
    "TOPO_BUSINESS_HOURS": "Mon-Fri 09:00-18:00",
    "TOPO_HOLIDAYS_PATH": str(EXAMPLES / "holidays.csv"),
}
"""What ``make demo`` writes: the example directory (all assignees of the simulated data
but one), business hours and holidays."""

_HEADER = """\
# Settings of this checkout, read by make demo, make dev and Dagster's commands
# (dg dev, dg launch, dagster asset materialize), which load this file from the
# directory they run in; its values win over the shell's. Written by make demo for the
# simulated Topo API. For Topo itself set TOPO_API_KEY here or in the shell, and edit or
# remove the lines below (README, "Configuration"). A change of TOPO_TIMEZONE needs the
# days landed again (README, "Changing settings").
"""


def load_env_file(
    directory: Path | None = None, environ: MutableMapping[str, str] = os.environ
) -> dict[str, str]:
    """Put the ``.env`` of ``directory`` (default: the current one) into ``environ``, as
    Dagster's commands do: its values over those already set. Returns what it set."""
    path = (directory or Path.cwd()) / ENV_FILE_NAME
    if not path.is_file():
        return {}
    values = {key: value for key, value in dotenv_values(path).items() if value is not None}
    environ.update(values)
    return values


def write_demo_env_file(directory: Path | None = None) -> Path | None:
    """Write :data:`DEMO_SETTINGS` to the ``.env`` of ``directory`` if it has none.

    Returns:
        The file written, or ``None`` when one existed (it is left as it is).
    """
    path = (directory or Path.cwd()) / ENV_FILE_NAME
    if path.exists():
        return None
    lines = [f'{key}="{value}"' for key, value in DEMO_SETTINGS.items()]
    path.write_text(_HEADER + "\n".join(lines) + "\n")
    return path
