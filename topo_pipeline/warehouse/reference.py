"""Reference tables (schema ``reference``): facts about Topo's world that the API does not serve.

``reference.assignees`` is the assignee directory (who a workspace user id is, and which
team they are on), loaded from the CSV named by ``TOPO_ASSIGNEES_PATH`` by
:mod:`topo_pipeline.warehouse.assignees`. The by-assignee and by-team rollups of
:mod:`topo_pipeline.warehouse.registry` join it. Without a directory the table exists and
is empty, so the joins give NULL names and teams.
"""

from __future__ import annotations

from topo_pipeline.warehouse.tables import Column, Table

REFERENCE_SCHEMA = "reference"

ASSIGNEES = Table(
    REFERENCE_SCHEMA,
    "assignees",
    "The assignee directory: one row per workspace user id, from the CSV named by "
    "TOPO_ASSIGNEES_PATH (empty when no directory is configured). Topo has no users "
    "endpoint; this is where names and teams come from.",
    (
        Column(
            "user_id",
            "VARCHAR",
            "Workspace user id (lower-case UUID), as in topo.tasks.assignee_user_id. Unique.",
            not_null=True,
        ),
        Column("name", "VARCHAR", "The user's name; NULL when the file leaves it empty."),
        Column("team", "VARCHAR", "The user's team; NULL when the file leaves it empty."),
        Column("line", "INTEGER", "Line of the CSV file the row comes from.", not_null=True),
        Column(
            "loaded_at",
            "TIMESTAMPTZ",
            "When the directory was loaded from the file.",
            not_null=True,
        ),
    ),
)
"""``reference.assignees``; see :func:`~topo_pipeline.warehouse.assignees.replace_assignees`."""
