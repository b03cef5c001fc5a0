"""Declarative automation: the tables downstream of ``topo/tasks`` follow every run of it.

The refresh job rebuilds them in the same run. This covers runs that materialize
``topo/tasks`` alone (a UI "Materialize" of an old day) or ``reference/assignees``: every
asset downstream of ``topo/tasks`` gets :func:`downstream_automation_condition`
(``AutomationCondition.eager()`` that does not wait for days never fetched), evaluated by
:data:`DOWNSTREAM_AUTOMATION_SENSOR_NAME`, on by default (Dagster's own default automation
sensor starts stopped). The analytics assets are unpartitioned, so any refreshed day of
``topo/tasks`` triggers them, not only the latest one.
"""

from collections.abc import Sequence

import dagster as dg

from topo_pipeline.defs.assets.ingestion import TASKS_KEY
from topo_pipeline.defs.assets.reference import ASSIGNEES_KEY
from topo_pipeline.defs.jobs import DOWNSTREAM_SELECTION, REFRESH_SELECTION

DOWNSTREAM_AUTOMATION_SENSOR_NAME = "downstream_automation_sensor"
"""Automation condition sensor for every asset downstream of ``topo/tasks``."""

AUTOMATION_SENSOR_INTERVAL_SECONDS = 30

NOT_WAITED_FOR = dg.AssetSelection.assets(TASKS_KEY, ASSIGNEES_KEY)
"""Upstream assets followed when updated, never waited for: days of ``topo/tasks`` that were
never fetched, an assignee directory never loaded."""


DOWNSTREAM_CONDITION_LABEL = "eager, not waiting for unfetched days"


def downstream_automation_condition() -> dg.AutomationCondition:
    """``eager()`` that does not wait for what :data:`NOT_WAITED_FOR` never materialized.

    The asset is requested when an upstream asset was updated by a run that did not also
    update it, once no upstream is in progress and it is not in progress itself.
    """
    return (
        dg.AutomationCondition.eager()
        .replace(
            "any_deps_missing",
            dg.AutomationCondition.any_deps_missing().ignore(NOT_WAITED_FOR),
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
            "rebuilds them after topo/tasks was materialized without them."
        ),
    )
