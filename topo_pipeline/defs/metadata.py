"""Small helpers that turn query results into Dagster UI metadata, and add it per partition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

try:  # private: where Dagster 1.13 keeps a step's metadata (see add_partition_metadata)
    from dagster._core.execution.context import metadata_logging as _step_metadata
except ImportError:  # a Dagster that moved it: every partition takes the public method
    _step_metadata = None

PER_DAY_ROWS = 62
"""Most days a range run's ``per_day`` overview lists (it goes on the run's last day)."""


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    by_partition: Mapping[str, Mapping[str, object]],
) -> None:
    """Add each ``by_partition[key]`` to partition ``key`` of ``asset_key``, in one update.

    The same as ``context.add_asset_metadata`` for each partition in turn. Dagster copies
    and type-checks the step's whole metadata record on every ``add_asset_metadata`` call,
    so one call per partition is quadratic in a range run's partitions times its assets
    (figures: ``bench/README.md``, "Warehouse benchmark"). The first partition goes through
    ``add_asset_metadata`` for its checks (the asset is the step's, the partition the
    run's); the rest, once checked to be the run's too, are merged in one replacement of
    the record, which is private to Dagster 1.13's step context (``test_metadata.py``
    fails if it moves). Where it is not found, every partition goes through
    ``add_asset_metadata``.

    Raises:
        dagster.DagsterInvariantViolationError: as ``add_asset_metadata`` does, for an
            asset the step does not materialize or a partition outside the run.
    """
    items = list(by_partition.items())
    if not items:
        return
    (first, first_metadata), rest = items[0], items[1:]
    context.add_asset_metadata(first_metadata, asset_key=asset_key, partition_key=first)
    if not rest:
        return
    step = getattr(context.op_execution_context, "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    accumulator_type = getattr(_step_metadata, "OutputMetadataAccumulator", None)
    handle_type = getattr(_step_metadata, "AssetMetadataHandle", None)
    found = (
        accumulator_type is not None
        and handle_type is not None
        and isinstance(accumulator, accumulator_type)
    )
    if not found or not {key for key, _ in rest} <= set(context.partition_keys):
        for key, metadata in rest:
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)
        return
    merged = dict(accumulator.per_output_metadata)
    for key, metadata in rest:
        handle = handle_type(asset_key=asset_key, partition_key=key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step._metadata_accumulator = accumulator_type(per_output_metadata=merged)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table of ``rows`` under ``columns``; ``(no rows)`` when there are none.

    ``None`` shows as an empty cell, and ``|`` inside a value is escaped so it cannot
    break the table.
    """
    lines = [_row(columns), _row(["---"] * len(columns))]
    lines.extend(_row(["" if value is None else str(value) for value in row]) for row in rows)
    if len(lines) == 2:
        return "(no rows)"
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def table_value(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> dg.TableMetadataValue:
    """``rows`` under ``columns`` as a table the UI renders natively (sortable, typed).

    Numbers and booleans stay as they are; anything else (dates, timestamps, JSON) is shown
    as its text, and ``None`` as an empty cell.
    """
    records = [
        dg.TableRecord({name: _cell(value) for name, value in zip(columns, row, strict=True)})
        for row in rows
    ]
    types = {name: "string" for name in columns}
    for record in records:
        for name, value in record.data.items():
            if isinstance(value, bool):
                types[name] = "bool"
            elif isinstance(value, int):
                types[name] = "int"
            elif isinstance(value, float):
                types[name] = "float"
    schema = dg.TableSchema(columns=[dg.TableColumn(name, types[name]) for name in columns])
    return dg.MetadataValue.table(records=records, schema=schema)


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
