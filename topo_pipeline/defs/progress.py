"""Progress lines while ``topo/tasks`` fetches: days done, pages, tasks, request rate, ETA.

:class:`FetchProgress` wraps the page handler the client feeds; used as a context manager,
it writes a line every ``interval`` seconds when anything moved, and at least every
:data:`MAX_SILENCE_SECONDS` even when nothing did; a fetch shorter than ``interval`` writes
none. What a line says, and why a thread writes it: ``docs/design.md``, "Progress lines".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from topo_pipeline.api.models import Task
from topo_pipeline.api.windows import PageHandler, Window, WindowResult

# Declared in settings, beside TOPO_PROGRESS_INTERVAL_SECONDS, which they bound.
from topo_pipeline.settings import DEFAULT_INTERVAL_SECONDS, MAX_SILENCE_SECONDS


class FetchProgress:
    """A page handler that counts what passes through it and reports progress.

    Args:
        handler: the page handler to feed (the run's stage); every call is passed on.
        total_days: windows the fetch covers.
        counters: returns the client's counters (``requests``, ``retries``,
            ``rate_limited``), read when a line is written.
        log: writes one line (the run log's ``info``).
        rate_in_force: returns the request rate the client's rate control allows now, in
            requests per minute (``None``: unlimited); shown beside the observed rate.
        interval: shortest gap between lines, in seconds (at most
            :data:`MAX_SILENCE_SECONDS`).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        handler: PageHandler,
        *,
        total_days: int,
        counters: Callable[[], dict[str, float]],
        log: Callable[[str], None],
        rate_in_force: Callable[[], float | None] | None = None,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < interval <= MAX_SILENCE_SECONDS:
            raise ValueError(f"interval must be in (0, {MAX_SILENCE_SECONDS:.0f}] seconds")
        self._handler = handler
        self._counters = counters
        self._log = log
        self._rate_in_force = rate_in_force
        self._clock = clock
        self.interval = interval
        self.total_days = total_days
        self.days_done = 0
        self.pages = 0
        self.tasks = 0
        self._lock = threading.Lock()
        self._started = clock()
        self._last_line = self._started
        self._last_requests = 0
        self._last_state: tuple[int, int, int] = (0, 0, 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the page handler ------------------------------------------------------------------

    def __call__(self, window: Window, tasks: list[Task]) -> None:
        self._handler(window, tasks)
        with self._lock:
            self.pages += 1
            self.tasks += len(tasks)

    def discard(self, window: Window) -> None:
        """The client is about to read ``window`` afresh: its tasks so far are dropped."""
        self._handler.discard(window)

    def window_done(self, result: WindowResult) -> None:
        """The client reports a window fetched and reconciled."""
        with self._lock:
            self.days_done += 1
        self._handler.window_done(result)

    # -- reporting -------------------------------------------------------------------------

    def tick(self) -> str | None:
        """Write a line if one is due now; return it (``None`` if none was due).

        Due when ``interval`` passed since the last line and something moved, or when
        :data:`MAX_SILENCE_SECONDS` passed regardless.
        """
        now = self._clock()
        with self._lock:
            since = now - self._last_line
            state = (self.days_done, self.pages, self.tasks)
            moved = state != self._last_state
            if since < self.interval or (not moved and since < MAX_SILENCE_SECONDS):
                return None
            counters = self._counters()
            requests = int(counters.get("requests", 0))
            rate = (requests - self._last_requests) * 60.0 / since if since > 0 else 0.0
            line = self._line(now, rate, counters)
            self._last_line, self._last_requests, self._last_state = now, requests, state
        self._log(line)
        return line

    def _line(self, now: float, rate: float, counters: dict[str, float]) -> str:
        elapsed = now - self._started
        if self.days_done and self.days_done < self.total_days:
            eta = _duration(elapsed * (self.total_days - self.days_done) / self.days_done)
        elif self.days_done >= self.total_days:
            eta = "0s"
        else:
            eta = "unknown until a day is done"
        allowed = ""
        if self._rate_in_force is not None:
            limit = self._rate_in_force()
            allowed = " (unlimited)" if limit is None else f" (allowed {limit:.0f})"
        return (
            f"fetching: {self.days_done}/{self.total_days} days done, {self.pages} pages, "
            f"{self.tasks} tasks, {rate:.0f} requests/min{allowed}, "
            f"{int(counters.get('retries', 0))} retries "
            f"({int(counters.get('rate_limited', 0))} rate-limited), "
            f"elapsed {_duration(elapsed)}, ETA {eta}"
        )

    # -- the reporting thread ----------------------------------------------------------------

    def __enter__(self) -> FetchProgress:
        self._thread = threading.Thread(target=self._run, name="topo-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        # Waking at a fraction of the interval keeps lines close to it without a busy loop.
        step = min(self.interval, MAX_SILENCE_SECONDS) / 3
        while not self._stop.wait(step):
            self.tick()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
