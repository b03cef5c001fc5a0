"""``dead_run_sensor``: under the daemon, runs whose process died are failed and their slots freed.

Every :data:`DEAD_RUN_SENSOR_INTERVAL_SECONDS` it runs :func:`topo_pipeline.recovery.recover`
over the instance: ``STARTED`` runs whose process is known to be gone on this host are
marked failed, and the pool slots of ended runs freed. It launches no run; each tick's
result says what it did. On by default. It covers what the runs' own guard
(:mod:`topo_pipeline.defs.run_guard`) cannot: runs that hold no slot, and the time when no
run starts (``docs/design.md``, "Dead runs").
"""

from __future__ import annotations

import dagster as dg

from topo_pipeline.recovery import recover

DEAD_RUN_SENSOR_NAME = "dead_run_sensor"
"""Sensor: marks runs whose process died failed and frees the pool slots they held."""

DEAD_RUN_SENSOR_INTERVAL_SECONDS = 30


def build_dead_run_sensor() -> dg.SensorDefinition:
    """The sensor; it targets no job (it never requests a run)."""

    @dg.sensor(
        name=DEAD_RUN_SENSOR_NAME,
        minimum_interval_seconds=DEAD_RUN_SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Marks runs whose process died (kill -9, out of memory, a restart) failed and "
            "frees the pool slots they held, so later runs do not wait for them forever."
        ),
    )
    def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        lines = recover(context.instance).lines()
        for line in lines:
            context.log.warning(line)
        return dg.SkipReason("; ".join(lines) or "no dead run, no slot held by an ended run")

    return dead_run_sensor
