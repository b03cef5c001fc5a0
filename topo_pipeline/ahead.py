"""Computing the next results on a thread while the caller handles the ones already done.

The analytics step builds its tables one after the other on one DuckDB connection, and
then hands each table's materialization to Dagster, whose handling of it (an event and its
metadata per partition: 2,920 for a year of eight tables) is Python that holds the GIL.
DuckDB releases the GIL while a statement runs, so building the next table on a thread of
its own overlaps the two instead of running them end to end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@contextmanager
def computed_ahead(
    compute: Callable[[Item], Result], items: Sequence[Item], *, thread_name: str
) -> Iterator[Iterator[Result]]:
    """``compute(item)`` of each item, in order, on one thread; yields an iterator of results.

    The computations run one at a time, in the order of ``items``, as soon as the block
    starts; the iterator gives each result when it is ready, and raises a computation's
    error in its place. A computation that fails stops the ones after it (they may depend
    on it: a rollup is built from the ``task_sla`` before it), and so does leaving the
    block early; the one running is waited for, so whatever it uses (a DuckDB connection)
    is free again when the block ends.
    """
    stop = threading.Event()

    def guarded(item: Item) -> Result:
        if stop.is_set():
            raise CancelledError
        try:
            return compute(item)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        try:
            yield (future.result() for future in futures)
        finally:
            stop.set()
            for future in futures:
                future.cancel()
