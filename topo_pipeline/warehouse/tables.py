"""Declarations of the warehouse's tables and views, and the DDL rendered from them.

A :class:`Table` lists its :class:`Column` values (name, DuckDB type, ``COMMENT``); a
:class:`View` holds its ``SELECT``. :mod:`topo_pipeline.warehouse.schema` collects them into
the schema a file is migrated to, and the statements here are the only ones that spell a
table's columns out. Identifiers come from these closed declarations, never from input, so
rendering them into SQL text is safe; :func:`identifier` refuses anything else all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from topo_pipeline.warehouse.duckdb import CATALOG

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

PARTITION_ZONE = "the pipeline's time zone (TOPO_TIMEZONE)"
"""How a declared comment names the partition time zone; each publish writes the zone's name
into it (:func:`topo_pipeline.warehouse.pipeline_info.describe_pipeline`)."""


def identifier(name: str) -> str:
    """``name`` if it is a plain lower-case SQL identifier.

    Raises:
        ValueError: for anything else (it would need quoting, or is not a name at all).
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier")
    return name


def quoted(name: str) -> str:
    """``name`` as a quoted SQL identifier (for names read from a file or a path)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal (comments cannot be bound as parameters)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    """One column: its name, DuckDB type, ``COMMENT``, whether it may be NULL, its compression."""

    name: str
    sql_type: str
    comment: str
    not_null: bool = False
    compression: str | None = None
    """DuckDB's compression for the column (``USING COMPRESSION``); ``None`` lets DuckDB pick.

    It takes effect where the column is created: a new file, or a column added to an
    existing one. A column that already exists is not rewritten for it.
    """

    def definition(self) -> str:
        """The column as it appears in ``CREATE TABLE`` / ``ADD COLUMN``."""
        compression = (
            f" USING COMPRESSION {identifier(self.compression)}" if self.compression else ""
        )
        return (
            f"{identifier(self.name)} {self.sql_type}{compression}"
            f"{' NOT NULL' if self.not_null else ''}"
        )


@dataclass(frozen=True)
class Table:
    """A table of the warehouse (or of a run's stage), described once."""

    schema: str
    name: str
    comment: str
    columns: tuple[Column, ...]

    @property
    def qualified(self) -> str:
        """``warehouse.<schema>.<name>``: the name every statement uses."""
        return f"{CATALOG}.{identifier(self.schema)}.{identifier(self.name)}"

    @property
    def display_name(self) -> str:
        """``<schema>.<name>``, as analysts write it."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called ``name``.

        Raises:
            KeyError: if the table has none.
        """
        for candidate in self.columns:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.display_name} has no column {name!r}")

    def create_sql(self, *, qualified: str | None = None, if_not_exists: bool = True) -> str:
        """``CREATE TABLE`` for this table (at ``qualified``, by default its own name)."""
        body = ",\n".join(f"    {column.definition()}" for column in self.columns)
        clause = "IF NOT EXISTS " if if_not_exists else ""
        return f"CREATE TABLE {clause}{qualified or self.qualified} (\n{body}\n)"

    def comment_sql(self) -> list[str]:
        """``COMMENT ON`` the table and each of its columns."""
        statements = [f"COMMENT ON TABLE {self.qualified} IS {literal(self.comment)}"]
        statements += [
            f"COMMENT ON COLUMN {self.qualified}.{identifier(c.name)} IS {literal(c.comment)}"
            for c in self.columns
        ]
        return statements


@dataclass(frozen=True)
class View:
    """A view of the warehouse.

    ``select`` is a template that names tables as ``{catalog}<schema>.<table>``. Rendered
    with an empty ``catalog`` (the default), the names have no catalog: DuckDB stores a view
    as text and resolves it in the file the view is read from, so the view works in the
    pipeline's file (attached as ``warehouse``) as in the analyst copy (whose catalog is
    named after its file), and under any alias. Only where a file's catalog has the name of
    a schema the view reads (a copy called ``topo.duckdb``) is that catalog's name written
    in (:mod:`topo_pipeline.warehouse.file_names`). Literal braces are doubled.
    """

    schema: str
    name: str
    comment: str
    select: str
    column_comments: tuple[tuple[str, str], ...] = ()
    """``(column, COMMENT)`` of the view's columns that carry one."""

    @property
    def qualified(self) -> str:
        return f"{CATALOG}.{identifier(self.schema)}.{identifier(self.name)}"

    @property
    def display_name(self) -> str:
        """``<schema>.<name>``, as analysts write it."""
        return f"{self.schema}.{self.name}"

    def create_sql(self, *, catalog: str = CATALOG, tables_in: str | None = None) -> str:
        """``CREATE OR REPLACE VIEW`` in ``catalog``.

        Args:
            catalog: the alias of the attached file to create the view in.
            tables_in: the catalog name the view's tables are read from (any name: it is
                quoted); ``None`` leaves the names without a catalog, resolved in the
                view's own file.
        """
        name = f"{identifier(catalog)}.{identifier(self.schema)}.{identifier(self.name)}"
        prefix = "" if tables_in is None else f"{quoted(tables_in)}."
        return f"CREATE OR REPLACE VIEW {name} AS\n{self.select.format(catalog=prefix)}"

    def comment_sql(self) -> list[str]:
        """``COMMENT ON`` the view and each of its commented columns."""
        statements = [f"COMMENT ON VIEW {self.qualified} IS {literal(self.comment)}"]
        statements += [
            f"COMMENT ON COLUMN {self.qualified}.{identifier(name)} IS {literal(comment)}"
            for name, comment in self.column_comments
        ]
        return statements
