"""The query parameters of ``GET /v1/tasks``: validated into a store query and a page.

:func:`parse_list_tasks_params` judges every parameter of List Tasks as ``topo-api.md``
describes it; a bad one earns a 400 ``ValidationIssue`` naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from topo_pipeline.simulator.contract import PRIORITIES, STATUSES, TASK_TYPES, parse_timestamp
from topo_pipeline.simulator.errors import ApiError
from topo_pipeline.simulator.store import TaskQuery, timestamp_key

MAX_PAGE_SIZE = 100
SORT_FIELDS = frozenset({"created_at", "updated_at"})
SORT_ORDERS = frozenset({"asc", "desc"})
_SINGLE_VALUED = (
    "page",
    "size",
    "sort_by",
    "sort_order",
    "sequence_id",
    "status",
    "assignee_user_id",
    "created_at_after",
    "created_at_before",
)


def parse_list_tasks_params(params: Mapping[str, list[str]]) -> tuple[TaskQuery, int, int]:
    """Validate the query parameters of ``GET /v1/tasks``.

    Unknown parameters are ignored. A single-valued parameter given more than once is an
    error (``status`` is one value, not an array), as is an empty value.

    Returns:
        The filters and order, the page number and the page size.

    Raises:
        ApiError: a 400 ``ValidationIssue`` whose ``data.field`` names the parameter.
    """
    for name in _SINGLE_VALUED:
        if len(params.get(name, ())) > 1:
            raise invalid_parameter(
                name, ",".join(params[name]), "takes a single value, not a list"
            )

    def single(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    page = _integer("page", single("page"), default=1, low=1, high=None)
    size = _integer("size", single("size"), default=10, low=1, high=MAX_PAGE_SIZE)
    sort_by = _choice("sort_by", single("sort_by"), SORT_FIELDS)
    sort_order = _choice("sort_order", single("sort_order"), SORT_ORDERS) or "asc"
    status = _choice("status", single("status"), STATUSES)
    types = _choices("types", params.get("types"), TASK_TYPES)
    priorities = _choices("priorities", params.get("priorities"), PRIORITIES)
    sequence_id = _uuid("sequence_id", single("sequence_id"))
    assignee = _uuid("assignee_user_id", single("assignee_user_id"))
    template_values = params.get("sequence_template_ids")
    templates = None
    if template_values:
        templates = frozenset(_uuid("sequence_template_ids", v) or "" for v in template_values)
    after = _datetime("created_at_after", single("created_at_after"))
    before = _datetime("created_at_before", single("created_at_before"))
    query = TaskQuery(
        created_after=after,
        created_before=before,
        # Without sort_by the order is created_at then id: what the API's storage gives.
        sort_by=sort_by or "created_at",
        descending=sort_order == "desc",
        sequence_id=sequence_id,
        sequence_template_ids=templates,
        types=types,
        status=status,
        priorities=priorities,
        assignee_user_id=assignee,
    )
    return query, page, size


def invalid_parameter(name: str, value: str, reason: str) -> ApiError:
    """The 400 ``ValidationIssue`` for a query parameter, naming it in ``data.field``."""
    return ApiError(
        400,
        "ValidationIssue",
        f"Query parameter '{name}' {reason}.",
        {"field": name, "location": "query", "value": value[:200], "reason": reason},
    )


def _integer(name: str, value: str | None, *, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    text = value.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise invalid_parameter(name, value, "must be an integer")
    number = int(text)
    if number < low or (high is not None and number > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise invalid_parameter(name, value, f"must be {bounds}")
    return number


def _choice(name: str, value: str | None, allowed: frozenset[str]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise invalid_parameter(name, value, f"must be one of {', '.join(sorted(allowed))}")
    return value


def _choices(name: str, values: list[str] | None, allowed: frozenset[str]) -> frozenset[str] | None:
    if not values:
        return None
    return frozenset(_choice(name, v, allowed) or "" for v in values)


def _uuid(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid_parameter(name, value, "must be a UUID") from None


def _datetime(name: str, value: str | None) -> int | None:
    """An ISO 8601 date-time (``Z``, an offset, or naive = UTC) as a store timestamp key."""
    if value is None:
        return None
    # A date alone is not a date-time; fromisoformat would read it as midnight.
    if len(value) < 16 or value[10] not in "Tt ":
        raise invalid_parameter(name, value, "must be an ISO 8601 date-time")
    try:
        return timestamp_key(parse_timestamp(value))
    except ValueError:
        raise invalid_parameter(name, value, "must be an ISO 8601 date-time") from None
