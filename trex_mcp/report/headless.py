"""Drive a local headless Chromium over the DevTools protocol on a pipe: open a report, run script, click,
take a screenshot. Used by the report's browser test and benchmark.

The protocol travels over two inherited file descriptors (``--remote-debugging-pipe``: the browser reads
commands on fd 3 and writes replies on fd 4, each message NUL-terminated), so no socket is opened and no
extra package is needed. Guarantees: every wait is bounded by ``timeout_s`` and raises BrowserError when it
runs out; the browser runs in its own process group, which ``close`` ends (politely, then SIGKILL); its
temporary profile folder is removed. Not covered: more than one page at a time.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from trex_mcp.report.errors import ReportError

__all__ = ["BROWSER_FLAGS", "BrowserError", "Chromium", "find_chromium"]

BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class BrowserError(ReportError):
    """The browser could not be started, answered with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The Chromium binary: ``$TREX_CHROMIUM`` if set, else the first of chromium / chrome on PATH."""
    env = os.environ.get("TREX_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless browser with one page. Use as a context manager.

    ``errors`` collects uncaught page exceptions and console errors (text), for tests to assert on.
    """

    def __init__(self, binary: str | None = None, *, timeout_s: float = 30.0, width: int = 1400,
                 height: int = 1000) -> None:
        found = binary or find_chromium()
        if not found:
            raise BrowserError("no Chromium found on PATH", hint="apt-get install -y chromium, or set TREX_CHROMIUM")
        self.binary = found
        self.timeout_s = timeout_s
        self.width, self.height = width, height
        self.errors: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._buf = b""
        self._next_id = 0
        self._session: str | None = None
        self._target: str | None = None
        self._profile = tempfile.mkdtemp(prefix="trex-chromium-")
        self._log_path = Path(self._profile) / "browser.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_browser = self._from_browser = -1

    # ------------------------------------------------------------------ process

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Launch the browser and wait for its first answer. Raises BrowserError."""
        cmd_read, self._to_browser = os.pipe()  # browser reads commands on fd 3
        self._from_browser, reply_write = os.pipe()  # browser writes replies on fd 4

        def place_fds() -> None:  # runs in the child between fork and exec
            a = fcntl.fcntl(cmd_read, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(reply_write, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        cmd = [self.binary, *BROWSER_FLAGS, f"--user-data-dir={self._profile}",
               f"--window-size={self.width},{self.height}", "--remote-debugging-pipe", "about:blank"]
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          pass_fds=(3, 4), preexec_fn=place_fds,
                                          start_new_session=True)
        os.close(cmd_read)
        os.close(reply_write)
        self.command("Browser.getVersion")

    def close(self) -> None:
        """End the browser (Browser.close, then SIGKILL to its group after 5 s) and remove its profile."""
        proc = self._proc
        self._proc = None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(BrowserError, OSError):
                    self._write({"id": self._new_id(), "method": "Browser.close", "params": {}})
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # helpers (renderer, zygote) left in the group
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_browser = self._from_browser = -1
        shutil.rmtree(self._profile, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            lines = self._log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line for line in lines[-15:] if "dbus" not in line)

    # ------------------------------------------------------------------ protocol

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _write(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self._to_browser, data)
            data = data[written:]

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"the browser did not answer within {self.timeout_s:g} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"the browser exited: {self._log_tail() or 'no output'}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params") or {}
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        self._events.append(event)

    def command(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float | None = None,
                page: bool = False) -> dict[str, Any]:
        """Send one protocol command (to the page's session when ``page``) and return its result."""
        mid = self._new_id()
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if page:
            if self._session is None:
                raise BrowserError("no page is open; call open() first")
            message["sessionId"] = self._session
        self._write(message)
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read(deadline)
            if reply.get("id") == mid:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._note(reply)

    def wait_event(self, method: str, *, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait for the next event named ``method`` (page or browser) and return its params."""
        for i, event in enumerate(self._events):
            if event.get("method") == method:
                del self._events[: i + 1]
                params: dict[str, Any] = event.get("params", {})
                return params
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            message = self._read(deadline)
            if "method" in message:
                self._note(message)
                if message["method"] == method:
                    self._events.clear()
                    found: dict[str, Any] = message.get("params", {})
                    return found

    # ------------------------------------------------------------------ page

    def open(self, url: str) -> None:
        """Open ``url`` in a fresh page (closing the previous one) and wait for its load event."""
        if self._target is not None:
            self.command("Target.closeTarget", {"targetId": self._target})
            self._session = self._target = None
        target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._target = target
        self._session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page.enable", "Runtime.enable"):
            self.command(domain, page=True)
        self.command("Emulation.setDeviceMetricsOverride",
                     {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}, page=True)
        self._events.clear()
        self.command("Page.navigate", {"url": url}, page=True)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, *, await_promise: bool = False, timeout_s: float | None = None) -> Any:
        """Evaluate JavaScript in the page and return its value (JSON). Raises BrowserError on a JS error."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                   "awaitPromise": await_promise}, page=True, timeout_s=timeout_s)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed in the page: {text}")
        return result.get("result", {}).get("value")

    def click(self, x: float, y: float) -> None:
        """A left click at viewport coordinates, as a person makes it: move, press, release."""
        base = {"x": x, "y": y, "button": "left", "clickCount": 1}
        self.command("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, page=True)
        self.command("Input.dispatchMouseEvent", {"type": "mousePressed", **base}, page=True)
        self.command("Input.dispatchMouseEvent", {"type": "mouseReleased", **base}, page=True)

    def screenshot(self, path: str | os.PathLike[str], *, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole scrollable page when ``full_page``) and return its path."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.command("Page.getLayoutMetrics", page=True)["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.command("Page.captureScreenshot", params, page=True)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out
