"""Small helpers that turn query results into Dagster UI metadata, and add it per partition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg

PER_DAY_ROWS = 62
"""Most days a range run's ``per_day`` overview lists (it goes on the run's last day)."""


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    by_partition: Mapping[str, Mapping[str, object]],
) -> None:
    """Add each ``by_partition[key]`` to partition ``key`` of ``asset_key``.

    Raises:
        dagster.DagsterInvariantViolationError: as ``add_asset_metadata`` does, for an
            asset the step does not materialize or a partition outside the run.
    """
    for key, metadata in by_partition.items():
        context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=key)


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
