"""``defs/metadata.py``: per-partition metadata of a range run, added in one update."""

from collections.abc import Callable, Iterator

import dagster as dg
import pytest
from dagster._core.execution.context.system import StepExecutionContext

from topo_pipeline.defs import metadata as metadata_module
from topo_pipeline.defs.metadata import add_partition_metadata
from topo_pipeline_tests.harness import fresh_instance

DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-10")
KEYS = ["2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
FAST = dg.AssetKey("fast")
PUBLIC = dg.AssetKey("public")

Body = Callable[[dg.AssetExecutionContext], None]


def _metadata(day: str) -> dict[str, object]:
    return {"dagster/row_count": int(day[-2:]), "rate": int(day[-2:]) / 10}


def _materialize(body: Body) -> dg.ExecuteInProcessResult:
    """Run ``body`` in a step of two assets over :data:`KEYS`, then report both."""

    @dg.multi_asset(
        specs=[dg.AssetSpec(FAST), dg.AssetSpec(PUBLIC)],
        partitions_def=DAYS,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def step(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        body(context)
        for key in (FAST, PUBLIC):
            yield dg.MaterializeResult(asset_key=key, metadata={"run_wide": 1})

    with fresh_instance() as instance:
        return dg.materialize(
            [step],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": KEYS[0],
                "dagster/asset_partition_range_end": KEYS[-1],
            },
            raise_on_error=False,
        )


def _by_partition(
    result: dg.ExecuteInProcessResult, key: dg.AssetKey
) -> dict[str | None, dict[str, object]]:
    return {
        m.partition: {name: value.value for name, value in m.metadata.items()}
        for m in result.asset_materializations_for_node("step")
        if m.asset_key == key
    }


def _public(context: dg.AssetExecutionContext, key: dg.AssetKey, days: list[str]) -> None:
    for day in days:
        context.add_asset_metadata(_metadata(day), asset_key=key, partition_key=day)


def _fast(context: dg.AssetExecutionContext, key: dg.AssetKey, days: list[str]) -> None:
    add_partition_metadata(context, key, {day: _metadata(day) for day in days})


def _both(context: dg.AssetExecutionContext) -> None:
    _fast(context, FAST, KEYS)
    _public(context, PUBLIC, KEYS)


def _public_calls(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The partition keys ``add_asset_metadata`` is called with, from now on."""
    calls: list[str | None] = []
    add = StepExecutionContext.add_asset_metadata

    def counted(
        self: StepExecutionContext,
        metadata: dict[str, object],
        asset_key: dg.AssetKey | None = None,
        partition_key: str | None = None,
    ) -> None:
        calls.append(partition_key)
        add(self, metadata, asset_key=asset_key, partition_key=partition_key)

    monkeypatch.setattr(StepExecutionContext, "add_asset_metadata", counted)
    return calls


def test_each_partition_gets_what_add_asset_metadata_would_give() -> None:
    result = _materialize(_both)

    assert result.success
    fast = _by_partition(result, FAST)
    assert fast == _by_partition(result, PUBLIC)
    assert fast == {day: {**_metadata(day), "run_wide": 1} for day in KEYS}


def test_only_the_first_partition_goes_through_add_asset_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-update path is taken on the pinned Dagster (it fails if the record moves)."""
    calls = _public_calls(monkeypatch)

    result = _materialize(lambda context: _fast(context, FAST, KEYS))

    assert result.success
    assert calls == [KEYS[0]]
    assert _by_partition(result, FAST) == {d: {**_metadata(d), "run_wide": 1} for d in KEYS}


def test_without_the_record_every_partition_takes_the_public_method(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metadata_module, "_step_metadata", None)
    calls = _public_calls(monkeypatch)

    result = _materialize(_both)

    assert result.success
    assert calls == KEYS + KEYS
    assert _by_partition(result, FAST) == _by_partition(result, PUBLIC)


def test_metadata_added_before_and_after_is_kept() -> None:
    """Of the other asset, of the asset without a partition, and of its own partitions."""

    def body(context: dg.AssetExecutionContext) -> None:
        _public(context, PUBLIC, KEYS)
        context.add_asset_metadata({"asset_wide": "w"}, asset_key=FAST)
        context.add_asset_metadata(
            {"before": "b", "rate": -1}, asset_key=FAST, partition_key=KEYS[2]
        )
        _fast(context, FAST, KEYS)
        context.add_asset_metadata({"after": "a"}, asset_key=FAST, partition_key=KEYS[-1])

    result = _materialize(body)

    assert result.success
    fast = _by_partition(result, FAST)
    common = {"run_wide": 1, "asset_wide": "w"}
    assert fast[KEYS[0]] == {**_metadata(KEYS[0]), **common}
    assert fast[KEYS[2]] == {**_metadata(KEYS[2]), **common, "before": "b"}
    assert fast[KEYS[-1]] == {**_metadata(KEYS[-1]), **common, "after": "a"}
    assert _by_partition(result, PUBLIC) == {d: {**_metadata(d), "run_wide": 1} for d in KEYS}


@pytest.mark.parametrize("position", [0, -1], ids=["first", "later"])
def test_a_partition_outside_the_run_is_refused(position: int) -> None:
    days = list(KEYS)
    days[position] = "2025-01-08"

    result = _materialize(lambda context: _fast(context, FAST, days))

    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "partition key '2025-01-08' that is not being targeted" in error.message


def test_an_asset_the_step_does_not_materialize_is_refused() -> None:
    result = _materialize(lambda context: _fast(context, dg.AssetKey("elsewhere"), KEYS))

    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "asset key 'AssetKey(['elsewhere'])' that is not being materialized" in error.message
