"""A local, seeded stand-in for Topo's ``GET /v1/tasks``: a real HTTP server on loopback.

It is what the tests, ``make demo`` and the benchmarks run against. See ``README.md`` in
this folder, and ``python -m topo_pipeline.simulator --help`` to run it on its own.
"""

from topo_pipeline.simulator.activity import Activity, move_on
from topo_pipeline.simulator.dataset import DatasetSpec, SimulatedDataset
from topo_pipeline.simulator.faults import FaultPlan
from topo_pipeline.simulator.generation import assignee_ids, generate_dataset, generate_tasks
from topo_pipeline.simulator.handler import RequestRecord
from topo_pipeline.simulator.live import LiveActivity, LiveTraffic
from topo_pipeline.simulator.server import (
    DEFAULT_API_KEYS,
    DEMO_API_KEY,
    NO_SCOPE_API_KEY,
    SimulatedTopoApi,
)
from topo_pipeline.simulator.store import TaskQuery, TaskStore
from topo_pipeline.simulator.tasks import make_task

__all__ = [
    "DEFAULT_API_KEYS",
    "DEMO_API_KEY",
    "NO_SCOPE_API_KEY",
    "Activity",
    "DatasetSpec",
    "FaultPlan",
    "LiveActivity",
    "LiveTraffic",
    "RequestRecord",
    "SimulatedDataset",
    "SimulatedTopoApi",
    "TaskQuery",
    "TaskStore",
    "assignee_ids",
    "generate_dataset",
    "generate_tasks",
    "make_task",
    "move_on",
]
