"""The request pacer spaces requests evenly and honours pauses, across threads."""

from __future__ import annotations

import itertools
import threading
import time as real_time

from topo_pipeline.api.pacing import RequestPacer


class FakeTime:
    """A clock whose sleep advances it; thread-safe."""

    def __init__(self) -> None:
        self.now = 100.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def test_slots_are_evenly_spaced_at_the_configured_rate() -> None:
    time = FakeTime()
    pacer = RequestPacer(120, clock=time.clock, sleep=time.sleep)  # one every 0.5 s
    starts = []
    for _ in range(5):
        pacer.acquire()
        starts.append(time.now)
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.5] * 4


def test_unpaced_never_waits() -> None:
    time = FakeTime()
    pacer = RequestPacer(None, clock=time.clock, sleep=time.sleep)
    assert [pacer.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert time.now == 100.0


def test_a_pause_holds_the_next_request() -> None:
    time = FakeTime()
    pacer = RequestPacer(60, clock=time.clock, sleep=time.sleep)
    pacer.acquire()
    pacer.pause_for(5.0)
    pacer.acquire()
    assert time.now >= 105.0


def test_threads_share_one_schedule() -> None:
    pacer = RequestPacer(6000)  # one every 10 ms, real clock
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            pacer.acquire()
            with lock:
                starts.append(real_time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    # 20 requests at 10 ms spacing need at least 190 ms end to end.
    assert starts[-1] - starts[0] >= 0.19 - 0.005
