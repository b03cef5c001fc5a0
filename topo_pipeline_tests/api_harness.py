"""What the API-client tests share: simulated APIs over task lists, clients at the defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topo_pipeline.api.client import ClientConfig, TopoClient
from topo_pipeline.simulator import DEMO_API_KEY, SimulatedTopoApi

SECRET_KEY = "test-key-Sup3rS3cret-Value-0123456789"
"""A long, distinctive key, so a leak would be easy to spot in any text."""

Serve = Callable[..., SimulatedTopoApi]
"""The ``serve`` fixture (conftest.py): ``serve(tasks_or_store, faults=None, api_keys=None)``."""


def default_client(api: SimulatedTopoApi, key: str = DEMO_API_KEY, **overrides: Any) -> TopoClient:
    """A client at the production defaults (adaptive rate, no cap), with test-sized backoff."""
    config = ClientConfig(
        base_url=api.base_url, backoff_base_seconds=0.005, backoff_cap_seconds=0.02, **overrides
    )
    return TopoClient(key, config)
