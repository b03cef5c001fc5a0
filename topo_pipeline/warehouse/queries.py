"""Named SQL statements kept as ``.sql`` files in ``topo_pipeline/warehouse/sql``.

One statement (or one DDL script) per file, one purpose each. Values are always bound as
parameters (``$name`` in the file, a dict at execution); never formatted into the text.
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
