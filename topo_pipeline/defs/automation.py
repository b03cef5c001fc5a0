"""Declarative automation: the tables downstream of ``topo/tasks`` follow every run of it.

The refresh job rebuilds them in the same run. This covers runs that materialize
``topo/tasks`` alone (a UI "Materialize" of an old day) or ``reference/assignees``: every
asset downstream of ``topo/tasks`` gets :func:`downstream_automation_condition`
(an upstream update, as in ``AutomationCondition.eager()``), evaluated by
:data:`DOWNSTREAM_AUTOMATION_SENSOR_NAME`, on by default (Dagster's own default automation
sensor starts stopped). The analytics assets are unpartitioned, so any refreshed day of
``topo/tasks`` triggers them, not only the latest one.
"""

from collections.abc import Sequence

import dagster as dg

from topo_pipeline.defs.jobs import DOWNSTREAM_SELECTION, REFRESH_SELECTION

DOWNSTREAM_AUTOMATION_SENSOR_NAME = "downstream_automation_sensor"
"""Automation condition sensor for every asset downstream of ``topo/tasks``."""

AUTOMATION_SENSOR_INTERVAL_SECONDS = 30

DOWNSTREAM_CONDITION_LABEL = "after any upstream update"


def downstream_automation_condition() -> dg.AutomationCondition:
    """Requested when an upstream asset was updated by a run that did not also update this
    one, once no upstream asset is in progress and it is not in progress itself.

    ``eager()`` without its wait for missing upstream days and its build of a never
    materialized asset: days never fetched are normal, and the tables are built by the
    first run of ``topo/tasks*`` anyway.
    """
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(DOWNSTREAM_CONDITION_LABEL)


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
            "rebuilds them after topo/tasks was materialized without them."
        ),
    )
