"""What the pipeline tests share: a simulated Topo API with the settings and instance to run on."""

from __future__ import annotations

from dataclasses import dataclass
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
