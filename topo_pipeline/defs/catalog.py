"""Catalog metadata on every asset at definition time: the UI's catalog is complete before a run.

:func:`with_catalog` gives each table asset (``topo/tasks`` → ``topo.tasks``,
``analytics/<t>`` → ``analytics.<t>``) its ``dagster/table_name`` and a
``dagster/column_schema`` derived from the tables' own DDL and comments
(:func:`topo_pipeline.warehouse.catalog.table_catalog`), gives every asset its owners
(``TOPO_ASSET_OWNERS``) and links each to the source file that defines it.
"""

from collections.abc import Sequence

import dagster as dg

from topo_pipeline.warehouse.catalog import Table, table_catalog


def with_catalog(
    assets: Sequence[dg.AssetsDefinition], owners: Sequence[str]
) -> list[dg.AssetsDefinition]:
    """``assets`` with table name, column schema, owners and source code references."""
    tables = table_catalog()

    def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
        table = tables.get(".".join(spec.key.path))
        metadata = table_metadata(table) if table is not None else {}
        return spec.merge_attributes(metadata=metadata, owners=list(owners))

    annotated = [asset.map_asset_specs(annotate) for asset in assets]
    return list(dg.with_source_code_references(annotated))


def table_metadata(table: Table) -> dict[str, object]:
    """``dagster/table_name`` and ``dagster/column_schema`` of one table."""
    return {
        "dagster/table_name": table.qualified_name,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(column.name, column.data_type, description=column.comment)
                for column in table.columns
            ]
        ),
    }
