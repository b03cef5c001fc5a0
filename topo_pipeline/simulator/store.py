"""The simulated API's task table: mutable, thread-safe, fast to page through.

Tasks are kept ordered by ``(created_at, id)``, so a created-at window is two bisections,
never a scan of the whole table. The filtered and sorted result of each distinct query
(a :class:`Selection`) is cached until the next mutation, so walking the 1,000 pages of
a 100,000-task day filters and sorts that day once, not once per page. Each task's JSON
is encoded once, when first served.
"""

from __future__ import annotations

import json
import random
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from topo_pipeline.simulator.contract import parse_timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHED_SELECTIONS = 32  # distinct queries kept; a paging client needs only its own


def timestamp_key(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime: the store's sort key."""
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """The filters and order of one list-tasks request (paging excluded).

    Timestamps are :func:`timestamp_key` values; ids are lowercase canonical uuids.
    ``None`` means "no filter". Both created-at bounds are exclusive.
    """

    created_after: int | None = None
    created_before: int | None = None
    sort_by: str = "created_at"
    descending: bool = False
    sequence_id: str | None = None
    sequence_template_ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    status: str | None = None
    priorities: frozenset[str] | None = None
    assignee_user_id: str | None = None


class _Record:
    """One stored task: the API object plus the parsed values queries use."""

    __slots__ = (
        "assignee",
        "created",
        "encoded_json",
        "id",
        "priority",
        "sequence_id",
        "status",
        "task",
        "type",
        "updated",
    )

    def __init__(self, task: Mapping[str, Any]) -> None:
        task_id = task.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("a task needs a string 'id'")
        try:
            self.created = timestamp_key(parse_timestamp(task["created_at"]))
            updated = task.get("updated_at")
            self.updated = (
                self.created if updated is None else timestamp_key(parse_timestamp(updated))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"task {task_id}: created_at/updated_at must be ISO 8601") from exc
        self.task = dict(task)  # a private copy: callers may keep mutating theirs
        self.id = task_id
        self.type = task.get("type")
        self.priority = task.get("priority")
        self.status = task.get("status")
        self.sequence_id = _lower(task.get("sequence_id"))
        self.assignee = _lower(task.get("assignee_user_id"))
        self.encoded_json: bytes | None = None

    @property
    def key(self) -> tuple[int, str]:
        return (self.created, self.id)

    def encoded(self) -> bytes:
        """The task's JSON; encoded on first use (records never change once built)."""
        if self.encoded_json is None:
            self.encoded_json = json.dumps(self.task, separators=(",", ":")).encode()
        return self.encoded_json


class Selection:
    """The tasks matching one :class:`TaskQuery`, in the order the API returns them.

    Immutable once built; safe to read from many threads.
    """

    def __init__(self, records: list[_Record], sort_by: str, descending: bool) -> None:
        if sort_by == "updated_at":
            records = sorted(records, key=lambda r: (r.updated, r.id))
        if descending:
            records.reverse()
        self._records = records
        # The sort-field value of each row, made ascending along the list, so the rows
        # that tie with a given row are found by bisection.
        sign = -1 if descending else 1
        field = "updated" if sort_by == "updated_at" else "created"
        self._keys = [sign * getattr(r, field) for r in records]

    def __len__(self) -> int:
        return len(self._records)

    def page(self, start: int, stop: int, tie_rng: random.Random | None = None) -> list[bytes]:
        """JSON of the rows ``[start, stop)``.

        With ``tie_rng``, every group of rows that tie on the sort field and overlaps the
        page is shuffled first (as a whole, so a group that straddles pages comes back in
        a different order on each request, as from an ``ORDER BY`` without tiebreaker).
        """
        records, keys = self._records, self._keys
        stop = min(stop, len(records))
        if tie_rng is None:
            return [r.encoded() for r in records[start:stop]]
        out: list[bytes] = []
        i = start
        while i < stop:
            group_start = bisect_left(keys, keys[i])
            group_end = bisect_right(keys, keys[i])
            group = records[group_start:group_end]
            tie_rng.shuffle(group)
            take_end = min(stop, group_end)
            out.extend(r.encoded() for r in group[i - group_start : take_end - group_start])
            i = take_end
        return out


class TaskStore:
    """All tasks the simulated API serves; every method is thread-safe.

    Args:
        tasks: task objects as the API returns them (each needs ``id`` and an ISO 8601
            ``created_at``; ``updated_at`` too for sorting by it).
        sequence_templates: sequence run id → sequence template id, for the
            ``sequence_template_ids`` filter (a run's template is not a task field).
    """

    def __init__(
        self,
        tasks: Iterable[Mapping[str, Any]] = (),
        sequence_templates: Mapping[str, str] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[str, _Record] = {}
        for task in tasks:
            record = _Record(task)
            self._by_id[record.id] = record
        self._ordered = sorted(self._by_id.values(), key=_record_key)
        self._templates = {
            _lower(run): _lower(template) for run, template in (sequence_templates or {}).items()
        }
        self._cache: OrderedDict[TaskQuery, Selection] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._ordered)

    def upsert(self, task: Mapping[str, Any], *, sequence_template_id: str | None = None) -> None:
        """Insert a task, or replace the stored task with the same ``id``.

        Args:
            task: the task object (a copy is stored).
            sequence_template_id: the template of the task's sequence run, if known.

        Raises:
            ValueError: if ``id`` is missing or a timestamp the store orders by is invalid.
        """
        record = _Record(task)
        with self._lock:
            self._remove(record.id)
            index = bisect_left(self._ordered, record.key, key=_record_key)
            self._ordered.insert(index, record)
            self._by_id[record.id] = record
            if sequence_template_id is not None and record.sequence_id is not None:
                self._templates[record.sequence_id] = sequence_template_id.lower()
            self._cache.clear()

    def delete(self, task_id: str) -> bool:
        """Remove a task; return whether it existed."""
        with self._lock:
            existed = self._remove(task_id)
            if existed:
                self._cache.clear()
            return existed

    def set_sequence_template(self, sequence_id: str, template_id: str) -> None:
        """Record (or change) which template a sequence run belongs to."""
        with self._lock:
            self._templates[sequence_id.lower()] = template_id.lower()
            self._cache.clear()

    def get(self, task_id: str) -> dict[str, Any] | None:
        """A copy of the stored task, or ``None``."""
        with self._lock:
            record = self._by_id.get(task_id)
            return None if record is None else dict(record.task)

    def all(self) -> list[dict[str, Any]]:
        """Copies of every task, ordered by ``created_at`` then ``id``."""
        with self._lock:
            return [dict(r.task) for r in self._ordered]

    def select(self, query: TaskQuery) -> Selection:
        """The tasks matching ``query``, filtered and sorted; cached until a mutation."""
        with self._lock:
            cached = self._cache.get(query)
            if cached is not None:
                self._cache.move_to_end(query)
                return cached
            selection = Selection(self._filter(query), query.sort_by, query.descending)
            self._cache[query] = selection
            if len(self._cache) > _CACHED_SELECTIONS:
                self._cache.popitem(last=False)
            return selection

    def _filter(self, query: TaskQuery) -> list[_Record]:
        """Matching records in ``(created_at, id)`` order; the caller holds the lock."""
        lo, hi = 0, len(self._ordered)
        # Both bounds are exclusive: a task created exactly at either one is left out.
        if query.created_after is not None:
            lo = bisect_right(self._ordered, query.created_after, key=_created)
        if query.created_before is not None:
            hi = bisect_left(self._ordered, query.created_before, key=_created)
        window = self._ordered[lo:hi] if lo < hi else []

        templates = self._templates
        checks = []
        if query.sequence_id is not None:
            checks.append(lambda r: r.sequence_id == query.sequence_id)
        if query.sequence_template_ids is not None:
            wanted = query.sequence_template_ids
            checks.append(lambda r: templates.get(r.sequence_id) in wanted)
        if query.types is not None:
            checks.append(lambda r: r.type in query.types)
        if query.status is not None:
            checks.append(lambda r: r.status == query.status)
        if query.priorities is not None:
            checks.append(lambda r: r.priority in query.priorities)
        if query.assignee_user_id is not None:
            checks.append(lambda r: r.assignee == query.assignee_user_id)
        if not checks:
            return window
        return [r for r in window if all(check(r) for check in checks)]

    def _remove(self, task_id: str) -> bool:
        record = self._by_id.pop(task_id, None)
        if record is None:
            return False
        del self._ordered[bisect_left(self._ordered, record.key, key=_record_key)]
        return True


def _record_key(record: _Record) -> tuple[int, str]:
    return record.key


def _created(record: _Record) -> int:
    return record.created


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
