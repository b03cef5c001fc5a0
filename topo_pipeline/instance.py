"""The Dagster instance folder, ``$DAGSTER_HOME``, that ``make dev`` and ``make demo`` share.

Dagster keeps run history, schedule and sensor state, cursors, concurrency slots and
compute logs in ``$DAGSTER_HOME`` and reads its instance settings (run queue, pools,
telemetry) from ``$DAGSTER_HOME/dagster.yaml``. The repository's ``dagster.yaml`` is the
source of truth for those settings; :func:`prepare_dagster_home` copies it in, so a fresh
clone and a clone whose settings changed both run with the committed configuration.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

DAGSTER_HOME_ENV = "DAGSTER_HOME"
REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout this package runs from (``uv sync`` installs it in editable mode)."""
INSTANCE_YAML = REPO_ROOT / "dagster.yaml"
"""The committed instance settings."""
DEFAULT_DAGSTER_HOME = REPO_ROOT / ".dagster_home"
"""Where state lives when ``DAGSTER_HOME`` is unset (the Makefile sets the same folder)."""


@dataclass(frozen=True)
class DagsterHome:
    """A prepared ``$DAGSTER_HOME``.

    Attributes:
        path: the folder (absolute, as Dagster requires).
        config: what happened to ``dagster.yaml``: ``"created"``, ``"updated"`` (it differed
            from the repository's) or ``"unchanged"``.
        backup: where the replaced ``dagster.yaml`` was saved, when it was updated.
    """

    path: Path
    config: str
    backup: Path | None = None

    def describe(self) -> str:
        """One line for the console."""
        text = f"Dagster state in {self.path} (DAGSTER_HOME)"
        if self.config == "created":
            return f"{text}; instance settings copied from {INSTANCE_YAML.name}"
        if self.config == "updated":
            return (
                f"{text}; instance settings updated from {INSTANCE_YAML.name} "
                f"(the previous file is {self.backup})"
            )
        return text


def prepare_dagster_home(
    environ: MutableMapping[str, str] | None = None, *, source: Path = INSTANCE_YAML
) -> DagsterHome:
    """Create ``$DAGSTER_HOME`` and install the repository's ``dagster.yaml`` in it.

    ``DAGSTER_HOME`` defaults to :data:`DEFAULT_DAGSTER_HOME`; a relative value is taken
    from the current directory. The variable is set in ``environ`` to the absolute path,
    so Dagster in this process and in every child process uses the same folder. A
    ``dagster.yaml`` that differs from ``source`` is replaced and kept as
    ``dagster.yaml.bak``.

    Args:
        environ: the environment to read and update (default: ``os.environ``).
        source: the settings to install (default: the repository's ``dagster.yaml``).

    Raises:
        FileNotFoundError: if ``source`` does not exist (the package runs outside its
            checkout).
    """
    env = os.environ if environ is None else environ
    raw = env.get(DAGSTER_HOME_ENV, "").strip()
    home = (Path(raw).expanduser() if raw else DEFAULT_DAGSTER_HOME).resolve()
    if not source.is_file():
        raise FileNotFoundError(
            f"instance settings {source} not found: run from the topo_pipeline checkout"
        )
    wanted = source.read_bytes()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    backup: Path | None = None
    if not target.exists():
        config = "created"
    elif target.read_bytes() == wanted:
        config = "unchanged"
    else:
        config = "updated"
        backup = target.with_name("dagster.yaml.bak")
        backup.write_bytes(target.read_bytes())
    if config != "unchanged":
        staged = target.with_name("dagster.yaml.tmp")
        staged.write_bytes(wanted)
        # A daemon that is starting never reads a half-written file.
        staged.replace(target)
    env[DAGSTER_HOME_ENV] = str(home)
    return DagsterHome(path=home, config=config, backup=backup)


if __name__ == "__main__":
    # `make test` prepares the folder before `dg check defs`, so that too runs on the
    # repository's settings (telemetry off) on a fresh clone.
    print(prepare_dagster_home().describe())  # noqa: T201
