"""A code location for the recovery tests, as the stock setup runs one.

Dagster's ``in_process_executor``, the pipeline's :class:`WarehouseResource` (so every
run is guarded as the pipeline's runs are), the dead-run sensor, and one asset in pool
``duckdb`` that opens the warehouse and then, while the file named by
``$RECOVERY_TEST_HOLD`` exists, keeps its slot: a run to kill inside its pool step.
Loaded with ``-f`` by the CLI, the webserver and the daemon; the warehouse file is
``$TOPO_DUCKDB_PATH``.
"""

import os
import time
from pathlib import Path

import dagster as dg

from topo_pipeline.defs.recovery_sensor import build_dead_run_sensor
from topo_pipeline.defs.resources import WarehouseResource

HOLD_ENV = "RECOVERY_TEST_HOLD"
JOB_NAME = "held_job"


HOLDING = "holding the duckdb slot"
"""Logged by a run of ``held`` that keeps its slot (after its row is written)."""


@dg.asset(pool="duckdb")
def held(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
    """Writes a row, then holds the pool slot while the hold file exists."""
    with warehouse.get_connection() as con:
        con.execute("CREATE TABLE IF NOT EXISTS held_runs (started_at TIMESTAMPTZ)")
        con.execute("INSERT INTO held_runs VALUES (now())")
    hold = os.environ.get(HOLD_ENV)
    if hold and Path(hold).exists():
        context.log.info(HOLDING)
    while hold and Path(hold).exists():
        time.sleep(0.2)


defs = dg.Definitions(
    assets=[held],
    jobs=[dg.define_asset_job(JOB_NAME, selection=[held])],
    sensors=[build_dead_run_sensor()],
    resources={"warehouse": WarehouseResource(database=dg.EnvVar("TOPO_DUCKDB_PATH"))},
    executor=dg.in_process_executor,
)
