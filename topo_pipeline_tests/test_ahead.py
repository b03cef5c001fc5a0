"""computed_ahead: results in order, the next computed while the caller handles one."""

from __future__ import annotations

import threading
import time

import pytest

from topo_pipeline.ahead import computed_ahead

WAIT = 5.0  # seconds a test waits for another thread before it counts as a failure


def test_results_come_in_order_from_one_thread_computing_one_at_a_time() -> None:
    threads: list[str] = []
    running = threading.Semaphore(1)

    def compute(item: int) -> int:
        assert running.acquire(blocking=False), "two computations ran at once"
        try:
            threads.append(threading.current_thread().name)
            return item * 10
        finally:
            running.release()

    with computed_ahead(compute, [1, 2, 3, 4], thread_name="test-ahead") as results:
        assert list(results) == [10, 20, 30, 40]
    assert len(set(threads)) == 1
    assert threads[0].startswith("test-ahead")


def test_the_next_item_is_computed_while_the_caller_handles_the_last() -> None:
    second_started = threading.Event()

    def compute(item: int) -> int:
        if item == 2:
            second_started.set()
        return item

    with computed_ahead(compute, [1, 2], thread_name="test-ahead") as results:
        assert next(results) == 1
        # Not asked for yet, item 2 is under way all the same.
        assert second_started.wait(WAIT)
        assert next(results) == 2


def test_no_more_than_one_is_computed_ahead_of_the_caller() -> None:
    second_done = threading.Event()
    computed: list[int] = []

    def compute(item: int) -> int:
        computed.append(item)
        if item == 2:
            second_done.set()
        return item

    with computed_ahead(compute, [1, 2, 3, 4], thread_name="test-ahead") as results:
        assert next(results) == 1
        assert second_done.wait(WAIT)
        time.sleep(0.1)  # room for an eager implementation to start item 3
        assert computed == [1, 2]
        assert next(results) == 2
    assert computed == [1, 2, 3]  # started as 2 was handed out; 4 never


def test_a_failed_computation_raises_in_its_place_and_stops_the_ones_after_it() -> None:
    computed: list[int] = []

    def compute(item: int) -> int:
        if item == 2:
            raise RuntimeError("item 2 failed")
        computed.append(item)
        return item

    with computed_ahead(compute, [1, 2, 3, 4], thread_name="test-ahead") as results:
        assert next(results) == 1
        with pytest.raises(RuntimeError, match="item 2 failed"):
            next(results)
    assert computed == [1]


def test_leaving_early_waits_for_the_running_computation_and_starts_no_other() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[int] = []

    def compute(item: int) -> int:
        if item == 2:
            started.set()
            release.wait(WAIT)
        finished.append(item)
        return item

    with computed_ahead(compute, [1, 2, 3], thread_name="test-ahead") as results:
        assert next(results) == 1
        assert started.wait(WAIT)
        threading.Timer(0.2, release.set).start()
    # The block ended only once item 2 was done; item 3 never started.
    assert finished == [1, 2]
