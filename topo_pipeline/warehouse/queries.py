"""Named SQL statements kept as ``.sql`` files in ``topo_pipeline/warehouse/sql``.

One statement per file, one purpose each. Values are always bound as parameters (``$name``
in the file, a dict at execution); never formatted into the text. A few files are templates
whose ``{placeholders}`` take identifiers and expressions from the closed declarations in
:mod:`~topo_pipeline.warehouse.registry` and :mod:`~topo_pipeline.warehouse.schema`
(:func:`render_sql`); DDL is rendered from the declarations themselves.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_sql(name: str) -> str:
    """The text of ``sql/<name>.sql``.

    Raises:
        FileNotFoundError: if no such file is bundled.
    """
    return resources.files("topo_pipeline.warehouse").joinpath("sql", f"{name}.sql").read_text()


@cache
def render_sql(name: str, **parts: str) -> str:
    """The template ``sql/<name>.sql`` with its ``{placeholders}`` filled from ``parts``.

    Only identifiers and expressions from the closed declarations (the registry, the
    schema) are passed as parts; values are still bound as parameters.

    Raises:
        FileNotFoundError: if no such file is bundled.
        KeyError: if the template names a part that is not given.
    """
    return load_sql(name).format_map(parts)
