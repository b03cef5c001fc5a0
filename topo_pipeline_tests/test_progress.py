"""Progress lines of a fetch: when one is due, and what it says."""

from __future__ import annotations

import pytest

from topo_pipeline.defs.progress import MAX_SILENCE_SECONDS, FetchProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stage:
    """A page handler (the client's ``PageHandler`` calls) that records what it is given."""

    def __init__(self) -> None:
        self.pages: list[tuple[str, int]] = []
        self.discarded: list[str] = []
        self.done: list[str] = []

    def __call__(self, window: str, tasks: list[object]) -> None:
        self.pages.append((window, len(tasks)))

    def discard(self, window: str) -> None:
        self.discarded.append(window)

    def window_done(self, result: str) -> None:
        self.done.append(result)


def make(clock: Clock, counters: dict[str, float], lines: list[str]) -> FetchProgress:
    return FetchProgress(
        Stage(),
        total_days=4,
        counters=lambda: dict(counters),
        log=lines.append,
        interval=15.0,
        clock=clock,
    )


def test_lines_come_at_most_every_interval_and_say_days_pages_tasks_rate_and_eta() -> None:
    clock, counters, lines = Clock(), {"requests": 0, "retries": 0, "rate_limited": 0}, []
    progress = make(clock, counters, lines)

    progress("day-1", [object()] * 100)
    clock.now += 10
    assert progress.tick() is None  # less than the interval since the start

    clock.now += 5
    progress.window_done("day-1")
    counters.update(requests=30, retries=2, rate_limited=1)
    line = progress.tick()

    assert line == (
        "fetching: 1/4 days done, 1 pages, 100 tasks, 120 requests/min, 2 retries "
        "(1 rate-limited), elapsed 15s, ETA 45s"
    )
    progress("day-2", [object()] * 50)
    clock.now += 14
    assert progress.tick() is None  # moved, but within the interval of the last line
    clock.now += 1
    counters.update(requests=45)
    second = progress.tick()

    assert second == (
        "fetching: 1/4 days done, 2 pages, 150 tasks, 60 requests/min, 2 retries "
        "(1 rate-limited), elapsed 30s, ETA 1m30s"
    )
    assert lines == [line, second]


def test_the_rate_that_rate_control_allows_is_shown_beside_the_observed_one() -> None:
    clock, allowed, lines = Clock(), [None], []
    progress = FetchProgress(
        Stage(),
        total_days=2,
        counters=lambda: {"requests": 10},
        log=lines.append,
        rate_in_force=lambda: allowed[0],
        clock=clock,
    )
    clock.now += MAX_SILENCE_SECONDS
    allowed[0] = 90.0
    clock.now += MAX_SILENCE_SECONDS

    assert progress.tick() is not None
    assert "5 requests/min (allowed 90)," in lines[-1]
    allowed[0] = None
    clock.now += MAX_SILENCE_SECONDS
    progress.tick()
    assert "0 requests/min (unlimited)," in lines[-1]


def test_a_stalled_fetch_still_reports_once_a_minute() -> None:
    clock, counters, lines = Clock(), {"requests": 5}, []
    progress = make(clock, counters, lines)

    clock.now += MAX_SILENCE_SECONDS - 1
    assert progress.tick() is None  # nothing moved yet: no line before the minute
    clock.now += 1
    line = progress.tick()

    assert line is not None
    assert "0/4 days done" in line
    assert "ETA unknown" in line
    assert lines == [line]


def test_it_passes_pages_discards_and_finished_windows_on() -> None:
    stage = Stage()
    progress = FetchProgress(stage, total_days=1, counters=dict, log=[].append, clock=Clock())

    progress("w", [object(), object()])
    progress.discard("w")
    progress.window_done("w-result")

    assert stage.pages == [("w", 2)]
    assert stage.discarded == ["w"]
    assert stage.done == ["w-result"]
    assert (progress.pages, progress.tasks, progress.days_done) == (1, 2, 1)


@pytest.mark.parametrize("interval", [0, -1, MAX_SILENCE_SECONDS + 1])
def test_an_interval_outside_the_minute_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        FetchProgress(Stage(), total_days=1, counters=dict, log=[].append, interval=interval)
