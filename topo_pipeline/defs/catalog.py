"""Catalog metadata on every asset at definition time: the UI's catalog is complete before a run.

:func:`with_catalog` gives each table asset (``topo/tasks`` → ``topo.tasks``,
``analytics/<t>`` → ``analytics.<t>``) its ``dagster/table_name`` and a
``dagster/column_schema`` read from the warehouse's table declarations
(:data:`topo_pipeline.warehouse.schema.TABLES`, the same ones the DDL and comments are
rendered from), gives every asset its owners (``TOPO_ASSET_OWNERS``) and links each to
the source file that defines it; an asset that is a file outside the warehouse (the
analyst copy) gets its ``dagster/uri``.
"""

from collections.abc import Mapping, Sequence

import dagster as dg

from topo_pipeline.warehouse.schema import TABLES
from topo_pipeline.warehouse.tables import Table


def with_catalog(
    assets: Sequence[dg.AssetsDefinition],
    owners: Sequence[str],
    uris: Mapping[dg.AssetKey, str] | None = None,
) -> list[dg.AssetsDefinition]:
    """``assets`` with table name, column schema, owners, source code references, and the
    ``dagster/uri`` of those in ``uris``."""
    tables = {table.display_name: table for table in TABLES}
    uris = uris or {}

    def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
        table = tables.get(".".join(spec.key.path))
        metadata = table_metadata(table) if table is not None else {}
        if spec.key in uris:
            metadata["dagster/uri"] = uris[spec.key]
        return spec.merge_attributes(metadata=metadata, owners=list(owners))

    annotated = [asset.map_asset_specs(annotate) for asset in assets]
    return list(dg.with_source_code_references(annotated))


def table_metadata(table: Table) -> dict[str, object]:
    """``dagster/table_name`` and ``dagster/column_schema`` of one declared table."""
    return {
        "dagster/table_name": table.display_name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    column.name,
                    column.sql_type,
                    description=column.comment,
                    constraints=dg.TableColumnConstraints(nullable=not column.not_null),
                )
                for column in table.columns
            ]
        ),
    }
