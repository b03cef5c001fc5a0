"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe.

:func:`find_chromium` finds Debian's ``chromium`` (installing it with apt-get when missing
and running as root). :class:`Chromium` starts it with no network features
(``--remote-debugging-pipe``: commands on file descriptor 3, events on 4, JSON messages
ended by NUL, so no port and no extra package), and :meth:`Chromium.open` loads a page and
records what a reader would not see: console messages, uncaught exceptions and every
request the page made. A :class:`Page` evaluates JavaScript in the loaded page (the report
itself has none), takes screenshots and prints PDFs.

Also a command for the README's screenshot::

    .venv/bin/python -m topo_pipeline_tests.browser data/sla_report.html docs/sla_report.png
"""

from __future__ import annotations

import base64
import fcntl
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)
"""Headless, and nothing that reaches the network by itself."""

TIMEOUT_SECONDS = 30.0

BASH = shutil.which("bash") or "/bin/bash"


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The path of ``chromium``; installed with apt-get first if missing and we are root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)  # noqa: S603
    return shutil.which("chromium")


@dataclass
class Page:
    """A loaded page: its session, and what it logged and requested."""

    browser: Chromium
    session: str
    console: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (JSON-serializable)."""
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions, as text."""
        return [entry["text"] for entry in self.console if entry["level"] == "error"]

    def screenshot(self, path: Path, *, width: int = 1200, height: int | None = None) -> Path:
        """A PNG of the page at ``width`` CSS pixels: its whole height, or the top ``height``."""
        self.set_viewport(width, 800)
        full = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        shown = min(full, height) if height else full
        self.set_viewport(width, shown)
        data = self.browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "clip": {"x": 0, "y": 0, "width": width, "height": shown, "scale": 1},
            },
            session=self.session,
        )["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def pdf(self) -> bytes:
        """The page printed as the browser prints it (its ``@page`` size: A4)."""
        data = self.browser.send(
            "Page.printToPDF", {"preferCSSPageSize": True}, session=self.session
        )["data"]
        return base64.b64decode(data)

    def emulate_media(self, media: str) -> None:
        """Apply the ``print`` (or ``screen``) style sheets to the page."""
        self.browser.send("Emulation.setEmulatedMedia", {"media": media}, session=self.session)

    def set_viewport(self, width: int, height: int) -> None:
        """Lay the page out at ``width`` x ``height`` CSS pixels."""
        self.browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )


class Chromium:
    """A headless Chromium process and its DevTools pipe."""

    def __init__(self, executable: str, profile: Path) -> None:
        commands_read, self._commands = _pipe()
        self._events, events_write = _pipe()
        # The browser reads commands on fd 3 and writes answers on fd 4: bash maps them (dash
        # takes single-digit descriptors only; ours are above 10, see _pipe).
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{events_write}'
        self.process = subprocess.Popen(  # noqa: S603
            [BASH, "-c", script, executable, *FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(commands_read, events_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(commands_read)
        os.close(events_write)
        self._ids = itertools.count(1)
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._events_by_session: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    @contextmanager
    def launch(cls, executable: str, profile: Path) -> Iterator[Chromium]:
        browser = cls(executable, profile)
        try:
            browser.send("Browser.getVersion")
            yield browser
        finally:
            browser.close()

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        number = next(self._ids)
        answer: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._answers[number] = answer
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        try:
            reply = answer.get(timeout=TIMEOUT_SECONDS)
        except queue.Empty:
            raise BrowserError(f"no answer to {method} in {TIMEOUT_SECONDS:.0f}s") from None
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open(self, url: str, *, width: int = 1200, height: int = 900) -> Page:
        """Load ``url`` in a new tab, recording console, exceptions and requests."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._events_by_session[session] = events
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        page.set_viewport(width, height)
        self.send("Page.navigate", {"url": url}, session=session)
        while True:
            try:
                event = events.get(timeout=TIMEOUT_SECONDS)
            except queue.Empty:
                raise BrowserError(f"{url} did not finish loading") from None
            _record(page, event)
            if event["method"] == "Page.loadEventFired":
                break
        # Messages logged while the page settles arrive after the load event.
        self.send("Runtime.evaluate", {"expression": "1"}, session=session)
        while not events.empty():
            _record(page, events.get_nowait())
        return page

    def close(self) -> None:
        with suppress(OSError):
            os.write(
                self._commands, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0"
            )
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        self._reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._events, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    self._route(json.loads(raw))

    def _route(self, message: dict[str, Any]) -> None:
        with self._lock:
            if "id" in message:
                answer = self._answers.pop(message["id"], None)
                if answer is not None:
                    answer.put(message)
            elif message.get("sessionId") in self._events_by_session:
                self._events_by_session[message["sessionId"]].put(message)


def _pipe() -> tuple[int, int]:
    """A pipe whose ends are above 10, so the shell's ``3<&n 4>&m`` cannot clobber them."""
    ends = []
    for end in os.pipe():
        ends.append(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(end)
    return ends[0], ends[1]


def _record(page: Page, event: dict[str, Any]) -> None:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.consoleAPICalled":
        text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
        level = "error" if params["type"] in ("error", "assert") else params["type"]
        page.console.append({"level": level, "text": text})
    elif method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text", "")
        page.console.append({"level": "error", "text": text})
    elif method == "Log.entryAdded":
        entry = params["entry"]
        page.console.append({"level": entry["level"], "text": entry.get("text", "")})
    elif method == "Network.requestWillBeSent":
        page.requests.append(params["request"]["url"])


def main(argv: list[str]) -> int:
    """``browser.py REPORT.html OUT.png [HEIGHT]``: a screenshot of the top of a report."""
    source, target = Path(argv[0]).resolve(), Path(argv[1])
    height = int(argv[2]) if len(argv) > 2 else 1500
    executable = find_chromium()
    if executable is None:
        print("chromium is not installed", file=sys.stderr)  # noqa: T201
        return 1
    with tempfile.TemporaryDirectory() as profile, Chromium.launch(executable, Path(profile)) as b:
        page = b.open(source.as_uri(), width=1100)
        page.screenshot(target, width=1100, height=height)
        if page.errors():
            print("\n".join(page.errors()), file=sys.stderr)  # noqa: T201
            return 1
    print(f"{target}: {target.stat().st_size / 1024:.0f} KB")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
