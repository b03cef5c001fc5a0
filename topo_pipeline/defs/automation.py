"""Declarative automation: assets downstream of ``topo/tasks`` follow it, every day of it.

The refresh job already rebuilds downstream assets in the same run. This covers runs that
materialize ``topo/tasks`` alone, e.g. a UI "Materialize" of an old partition re-fetched
after a data fix: every asset downstream of ``topo/tasks`` gets
:func:`downstream_automation_condition`, which is ``AutomationCondition.eager()`` without
its "latest partition only" clause, so it follows every partition from
``TOPO_START_DATE`` on (plain ``eager()`` ignores any partition but the latest). Updates
made by a run that also materializes the downstream asset are ignored by ``eager()``, so
the refresh job's runs trigger nothing extra. How long a tick takes over years of daily
partitions is measured by ``bench/automation_bench.py`` (figures in ``docs/operating.md``).

:data:`DOWNSTREAM_AUTOMATION_SENSOR_NAME` evaluates those conditions; it is on by default
(Dagster's own default automation sensor starts stopped).

A materialization of ``reference/assignees`` (the assignee directory, unpartitioned) is
followed too: the by-assignee and by-team rollups depend on it, so every partition of theirs
whose ``analytics/task_sla`` exists is requested; the sensor launches them as one backfill,
which the single-run backfill policy makes one run.

The condition is applied in :func:`with_downstream_automation`, by selection, so the
analytics module does not need to set it (a condition set there is replaced).
"""

from collections.abc import Sequence

import dagster as dg

from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.jobs import DOWNSTREAM_SELECTION, REFRESH_SELECTION

DOWNSTREAM_AUTOMATION_SENSOR_NAME = "downstream_automation_sensor"
"""Automation condition sensor for every asset downstream of ``topo/tasks``."""

AUTOMATION_SENSOR_INTERVAL_SECONDS = 30

DIRECTORY_SELECTION = dg.AssetSelection.assets(ASSIGNEES_KEY)
"""The assignee directory: an update of it is followed, its absence does not hold anything."""


DOWNSTREAM_CONDITION_LABEL = "eager over every partition"


def downstream_automation_condition() -> dg.AutomationCondition:
    """``eager()`` over every partition instead of only the latest.

    A partition is requested when an upstream partition it depends on was updated (by a
    run that did not also update it), once none of its upstream partitions is missing or
    in progress and it is not in progress itself. ``reference/assignees`` (unpartitioned)
    counts as an upstream of every partition of the by-assignee and by-team rollups: a new
    directory requests each of their partitions whose ``analytics/task_sla`` exists. Its
    never having been materialized holds nothing back (the table exists empty), so a
    deployment without a directory works as before.
    """
    return (
        dg.AutomationCondition.eager()
        .without(dg.AutomationCondition.in_latest_time_window())
        .replace(
            "any_deps_missing",
            dg.AutomationCondition.any_deps_missing().ignore(DIRECTORY_SELECTION),
        )
        .with_label(DOWNSTREAM_CONDITION_LABEL)
    )


def pipeline_asset_keys(
    assets: Sequence[dg.AssetsDefinition], selection: dg.AssetSelection = REFRESH_SELECTION
) -> list[dg.AssetKey]:
    """The keys ``selection`` picks among ``assets`` (default: ``topo/tasks`` and downstream)."""
    return sorted(selection.resolve(list(assets)), key=lambda key: key.to_user_string())


def with_downstream_automation(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """``assets`` with :func:`downstream_automation_condition` on every asset downstream
    of ``topo/tasks`` (whatever its module set); other assets are returned unchanged."""
    downstream = set(pipeline_asset_keys(assets, DOWNSTREAM_SELECTION))
    condition = downstream_automation_condition()
    return list(
        dg.map_asset_specs(
            lambda spec: (
                spec.replace_attributes(automation_condition=condition)
                if spec.key in downstream
                else spec
            ),
            list(assets),
        )
    )


def build_downstream_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The :data:`DOWNSTREAM_AUTOMATION_SENSOR_NAME` sensor, on by default."""
    return dg.AutomationConditionSensorDefinition(
        DOWNSTREAM_AUTOMATION_SENSOR_NAME,
        target=DOWNSTREAM_SELECTION,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_SENSOR_INTERVAL_SECONDS,
        description=(
            "Evaluates the automation conditions of the assets downstream of topo/tasks: "
            "rebuilds their partitions after topo/tasks partitions were materialized without them."
        ),
    )
