"""``defs/metadata.py``: per-partition metadata of a range run, added in one update."""

from collections.abc import Iterator, Mapping

import dagster as dg
import pytest
from dagster._core.execution.context.system import StepExecutionContext

from topo_pipeline.defs.metadata import add_partition_metadata
from topo_pipeline_tests.harness import fresh_instance

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-10")
RANGE = ("2025-01-02", "2025-01-05")
KEYS = ["2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
FAST = dg.AssetKey("fast")
PUBLIC = dg.AssetKey("public")


def _metadata(day: str) -> dict[str, object]:
    return {"dagster/row_count": int(day[-2:]), "rate": int(day[-2:]) / 10}


def _materialize(body: Mapping[dg.AssetKey, object]) -> dg.ExecuteInProcessResult:
    """Run a two-asset step over :data:`RANGE`; ``body`` maps each asset to how it adds metadata."""

    @dg.multi_asset(
        specs=[dg.AssetSpec(FAST), dg.AssetSpec(PUBLIC)],
        partitions_def=DAYS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def step(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        for key in (FAST, PUBLIC):
            body[key](context, key)  # type: ignore[operator]
            yield dg.MaterializeResult(asset_key=key, metadata={"run_wide": 1})

    with fresh_instance() as instance:
        return dg.materialize(
            [step],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": RANGE[0],
                "dagster/asset_partition_range_end": RANGE[1],
            },
            raise_on_error=False,
        )


def _by_partition(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, dict]:
    return {
        m.partition: {name: value.value for name, value in m.metadata.items()}
        for m in result.asset_materializations_for_node("step")
        if m.asset_key == key
    }


def _public(context: dg.AssetExecutionContext, key: dg.AssetKey) -> None:
    for day in context.partition_keys:
        context.add_asset_metadata(_metadata(day), asset_key=key, partition_key=day)


def test_each_partition_gets_what_add_asset_metadata_would_give() -> None:
    result = _materialize(
        {
            FAST: lambda c, k: add_partition_metadata(c, k, {d: _metadata(d) for d in KEYS}),
            PUBLIC: _public,
        }
    )

    assert result.success
    fast = _by_partition(result, FAST)
    assert fast == _by_partition(result, PUBLIC)
    assert fast == {day: {**_metadata(day), "run_wide": 1} for day in KEYS}


def test_it_merges_with_metadata_added_before_and_after() -> None:
    def fast(context: dg.AssetExecutionContext, key: dg.AssetKey) -> None:
        before = {"before": "b", "rate": -1}
        context.add_asset_metadata(before, asset_key=key, partition_key=KEYS[2])
        add_partition_metadata(context, key, {d: _metadata(d) for d in KEYS})
        context.add_asset_metadata({"after": "a"}, asset_key=key, partition_key=KEYS[-1])

    result = _materialize({FAST: fast, PUBLIC: _public})

    got = _by_partition(result, FAST)
    assert got[KEYS[2]] == {**_metadata(KEYS[2]), "before": "b", "run_wide": 1}
    assert got[KEYS[-1]] == {**_metadata(KEYS[-1]), "after": "a", "run_wide": 1}
    # The other asset's partitions are untouched by the merge.
    assert _by_partition(result, PUBLIC) == {d: {**_metadata(d), "run_wide": 1} for d in KEYS}


def test_it_updates_the_step_once_whatever_the_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The linear path is taken on the pinned Dagster: one public call, the rest merged."""
    calls: list[str | None] = []
    add = StepExecutionContext.add_asset_metadata

    def counted(
        self: StepExecutionContext,
        metadata: Mapping[str, object],
        asset_key: dg.AssetKey | None = None,
        partition_key: str | None = None,
    ) -> None:
        calls.append(partition_key)
        add(self, metadata, asset_key=asset_key, partition_key=partition_key)

    monkeypatch.setattr(StepExecutionContext, "add_asset_metadata", counted)
    result = _materialize(
        {
            FAST: lambda c, k: add_partition_metadata(c, k, {d: _metadata(d) for d in KEYS}),
            PUBLIC: lambda c, k: add_partition_metadata(c, k, {}),
        }
    )

    assert result.success
    assert calls == [KEYS[0]]
    assert _by_partition(result, PUBLIC) == {d: {"run_wide": 1} for d in KEYS}


@pytest.mark.parametrize("position", [0, -1], ids=["first", "later"])
def test_a_partition_outside_the_run_is_refused(position: int) -> None:
    keys = list(KEYS)
    keys[position] = "2025-01-08"
    result = _materialize(
        {
            FAST: lambda c, k: add_partition_metadata(c, k, {d: _metadata(d) for d in keys}),
            PUBLIC: _public,
        }
    )

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None
    assert "partition key '2025-01-08' that is not being targeted" in failure.message
