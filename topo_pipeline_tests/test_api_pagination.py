"""Reading one window, page by page, without HTTP: pages built by hand go into a
:class:`WindowRead`, which says what is inside the window, which pages to read again and
whether the ids reconcile with ``total_count``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from topo_pipeline.api.errors import TopoDataError
from topo_pipeline.api.models import TaskPage
from topo_pipeline.api.pagination import WindowRead
from topo_pipeline.simulator import make_task
from topo_pipeline_tests.api_harness import make_window

DAY = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = make_window(DAY, DAY + timedelta(days=1))
SIZE = 3


def new_read(max_tasks: int = 1000) -> WindowRead:
    return WindowRead(WINDOW, after=DAY - timedelta(seconds=1), page_size=SIZE, max_tasks=max_tasks)


def page(items: list[dict[str, Any]], total: int) -> TaskPage:
    pages = -(-total // SIZE)
    return TaskPage(items=items, total_count=total, total_pages=pages, has_more=False)


def at(minutes: float) -> dict[str, Any]:
    return make_task(created_at=DAY + timedelta(minutes=minutes))


def test_a_window_read_in_full_reconciles_and_counts_what_lies_around_it() -> None:
    before = make_task(created_at=DAY - timedelta(milliseconds=500))  # in the query's second
    leaked = make_task(created_at=DAY - timedelta(hours=1))  # outside the query's bounds
    inside = [at(1), at(2), at(3)]
    read = new_read()

    handed = read.accept(1, page([before, leaked, inside[0]], total=5))
    assert [t.id for t in handed] == [inside[0]["id"]]
    assert (read.page_count, read.complete) == (2, False)
    handed = read.accept(2, page(inside[1:], total=5))
    assert [t.id for t in handed] == [t["id"] for t in inside[1:]]

    assert read.complete
    assert read.reconciled()
    result = read.finish()
    assert (result.api_total, result.in_window, result.before_window) == (5, 3, 1)
    assert (result.out_of_bounds, result.reads, result.pages) == (1, 1, 2)
    assert result.expected_in_window == 4
    assert read.ids == set()  # let go once finished
    assert read.result() == result


def test_a_tie_straddling_pages_is_read_again_alone_before_the_window() -> None:
    first, second, last = at(1), at(2), at(9)
    tie = [at(5) for _ in range(3)]
    read = new_read()
    read.accept(1, page([first, second, tie[0]], total=6))
    read.accept(2, page([tie[0], tie[1], last], total=6))  # tie[2] hidden by the reorder
    assert read.complete
    assert not read.reconciled()

    assert read.tie_pages(max_rounds=20) == [1, 2]
    assert read.partial
    assert not read.complete
    read.accept(2, page([tie[2], tie[1], last], total=6))
    read.accept(1, page([first, second, tie[0]], total=6))
    assert read.complete
    assert read.reconciled()
    assert read.result().reads == 1


def test_tie_rounds_are_bounded_and_need_a_tie_on_a_page_boundary() -> None:
    read = new_read()
    read.accept(1, page([at(1), at(2), at(3)], total=7))
    read.accept(2, page([at(4), at(5), at(6)], total=7))
    read.accept(3, page([], total=7))
    assert read.tie_pages(max_rounds=20) == []  # no tie: only a fresh read can help

    tied = new_read()
    tied.accept(1, page([at(1), at(2), at(3)], total=5))
    tied.accept(2, page([at(3), at(4)], total=5))
    assert tied.tie_pages(max_rounds=0) == []


def test_ids_accumulate_over_steady_reads_and_are_dropped_when_the_total_moves() -> None:
    tasks = [at(n) for n in range(4)]
    read = new_read()
    read.accept(1, page(tasks[:3], total=4))
    read.accept(2, page(tasks[:1], total=4))  # tasks[3] missed
    assert read.restart() is False  # one steady total: keep the ids
    read.accept(1, page(tasks[1:4], total=4))
    read.accept(2, page(tasks[:1], total=4))
    assert read.reconciled()
    assert read.result().reads == 2

    moved = new_read()
    moved.accept(1, page(tasks[:3], total=4))
    moved.accept(2, page([], total=3))  # a task deleted between the two pages
    assert not moved.reconciled()
    assert moved.restart() is True  # the set changed: start afresh
    assert moved.ids == set()


def test_a_gap_names_the_window_the_counts_and_the_reads() -> None:
    read = new_read()
    read.accept(1, page([at(1)], total=2))
    error = read.gap()
    assert (error.expected, error.fetched) == (2, 1)
    assert WINDOW.start.isoformat() in str(error)
    assert "fetched 1 unique ids but Topo reports total_count 2 (read 1 times" in str(error)


@pytest.mark.parametrize(("items", "total"), [([at(1)], 10**9), ([at(1), at(2), at(3), at(4)], 4)])
def test_an_implausible_total_or_an_oversized_page_is_refused(
    items: list[dict[str, Any]], total: int
) -> None:
    with pytest.raises(TopoDataError, match="TOPO_API_MAX_TASKS_PER_WINDOW"):
        new_read(max_tasks=1000).accept(1, page(items, total=total))
