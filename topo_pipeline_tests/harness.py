"""What the pipeline tests share: a simulated Topo API with the settings and instance to run on."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from topo_pipeline.instance import INSTANCE_YAML
from topo_pipeline.settings import Settings
from topo_pipeline.simulator import SimulatedTopoApi, TaskStore

_COMMITTED = yaml.safe_load(INSTANCE_YAML.read_text())
INSTANCE_SETTINGS: dict[str, Any] = {
    key: _COMMITTED[key] for key in ("event_log_storage", "python_logs")
}
"""The repository's event log storage and ``python_logs`` settings, for ``instance_for_test``:
test runs store their events and log as deployed runs do."""

_blank_instance: Path | None = None


@contextmanager
def fresh_instance(settings: Mapping[str, Any] | None = None) -> Iterator[dg.DagsterInstance]:
    """A fresh ``dg.instance_for_test`` on :data:`INSTANCE_SETTINGS` (and ``settings``).

    Creating an instance's SQLite databases (tables, migration stamps, index) takes about
    0.3 s; each test gets a copy of a blank instance's files made once per process
    instead, a few milliseconds, and its own instance all the same.
    """
    global _blank_instance
    if _blank_instance is None:
        blank = Path(tempfile.mkdtemp(prefix="topo-blank-instance-"))
        atexit.register(shutil.rmtree, blank, ignore_errors=True)
        with dg.instance_for_test(overrides=INSTANCE_SETTINGS, temp_dir=str(blank)):
            pass
        _blank_instance = blank
    with tempfile.TemporaryDirectory(prefix="topo-instance-") as folder:
        home = Path(folder) / "home"
        shutil.copytree(_blank_instance, home)
        overrides = {**INSTANCE_SETTINGS, **(settings or {})}
        with dg.instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
            yield instance


@dataclass
class SimulatedPipeline:
    """A simulator serving a data set, the settings that point at it, and a test instance.

    Test modules subclass it with the runs and reads they need.
    """

    api: SimulatedTopoApi
    settings: Settings
    instance: dg.DagsterInstance

    @property
    def store(self) -> TaskStore:
        return self.api.store
