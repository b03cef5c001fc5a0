"""What the pipeline tests share: a simulated Topo API with the settings and instance to run on."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from topo_pipeline.settings import Settings
from topo_pipeline.simulator import SimulatedTopoApi, TaskStore


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
