"""Computing the next result on a thread while the caller handles the last one.

For work whose computation releases the GIL (a DuckDB statement) and whose handling holds
it (Dagster recording events): run end to end they add up, one step ahead they overlap.
The analytics step uses it for its tables (``defs/assets/analytics.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@contextmanager
def computed_ahead(
    compute: Callable[[Item], Result], items: Sequence[Item], *, thread_name: str
) -> Iterator[Iterator[Result]]:
    """``compute(item)`` of each item, in order, one step ahead on a thread of its own.

    The block gets an iterator of the results. The first computation starts when the first
    result is asked for, and each next one when the result before it is handed out, so it
    runs while the caller handles that result; never more than one runs, and never more
    than one is done ahead of the caller. A computation's error is raised in place of its
    result, and nothing after it is computed. Leaving the block waits for the computation
    under way, so whatever it uses (a DuckDB connection) is free again when the block ends.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:

        def results() -> Iterator[Result]:
            ahead: Future[Result] | None = None
            for index, item in enumerate(items):
                current = ahead if ahead is not None else pool.submit(compute, item)
                result = current.result()
                ahead = pool.submit(compute, items[index + 1]) if index + 1 < len(items) else None
                yield result

        yield results()
