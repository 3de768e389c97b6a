"""A loopback HTTP server that answers like arXiv, the Hub and its dataset viewer, from recorded files.

Tests and benchmarks point the real clients at it (arxiv `Client.query_url_format`, `HfApi(endpoint=...)`,
the datasets-server endpoint) so no client internals are patched. It counts requests, can hold responses until
released (to prove concurrency with barriers rather than timing) and can fail on demand (5xx, 429).

Layout of the fixtures folder (responses are served byte for byte):
- `arxiv/search.xml`: the Atom feed for any search; `arxiv/empty.xml` for searches containing "nomatch" and
  for unknown ids; `arxiv/<id>.xml` for `id_list=<id>` (version stripped, "/" written as "_").
- `hub/datasets.json`, `hub/models.json`: `GET /api/datasets` and `/api/models` (an empty list when the search
  contains "nomatch"); `hub/datasets/<owner>__<name>.json`: `GET /api/datasets/<owner>/<name>` (otherwise 404
  with `X-Error-Code: RepoNotFound`, as the Hub answers).
- `viewer/<owner>__<name>/splits.json`, `size.json`, `first-rows.<config>.<split>.json` under the path prefix
  `/datasets-server`; a dataset without a folder gets the viewer's 401 `ExternalUnauthenticatedError`.

Binds to 127.0.0.1 only. Not a general mock: it knows exactly these routes.
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["RecordedRequest", "ReplayServer"]

_VIEWER_PREFIX = "/datasets-server"
_HOLD_LIMIT_S = 30.0


class _LoopbackServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` without the reverse-DNS lookup `HTTPServer.server_bind` does (slow offline)."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    params: dict[str, list[str]] = field(default_factory=dict)


class ReplayServer:
    """Serve recorded arXiv / Hub / dataset-viewer answers on 127.0.0.1; use as a context manager."""

    def __init__(self, fixtures_dir: Path | str) -> None:
        self.fixtures = Path(fixtures_dir)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._release.set()
        self._failures: list[tuple[int, dict[str, str], str]] = []
        self._fail_always: tuple[int, dict[str, str], str] | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.arrived = threading.Condition(self._lock)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        self._httpd = _LoopbackServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="replay-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints for the clients ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def arxiv_query_url(self) -> str:
        """Value for `arxiv.Client.query_url_format`."""
        return f"{self.url}/api/query?{{}}"

    @property
    def hub_endpoint(self) -> str:
        return self.url

    @property
    def datasets_server(self) -> str:
        return self.url + _VIEWER_PREFIX

    # -- control ------------------------------------------------------------------------------------------

    def count(self, path_prefix: str = "/") -> int:
        """Requests received whose path starts with `path_prefix`."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    def wait_for_requests(self, n: int, timeout_s: float = 5.0) -> bool:
        """Block until at least `n` requests have arrived; False on timeout."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= n, timeout=timeout_s)

    def hold(self) -> None:
        """Keep every response waiting until `release()` (or 30 s, or `close()`)."""
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None,
                  path_prefix: str = "/") -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` with `status`."""
        with self._lock:
            self._failures.extend([(status, headers or {}, path_prefix)] * times)

    def fail_always(self, status: int | None, headers: dict[str, str] | None = None,
                    path_prefix: str = "/") -> None:
        """Answer every request under `path_prefix` with `status` until called with None."""
        with self._lock:
            self._fail_always = None if status is None else (status, headers or {}, path_prefix)

    # -- request handling ---------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        with self.arrived:
            self.requests.append(RecordedRequest("GET", parts.path, params))
            failure = self._take_failure(parts.path)
            self.arrived.notify_all()
        self._release.wait(_HOLD_LIMIT_S)
        if failure is not None:
            status, headers = failure
            self._send(h, status, json.dumps({"error": f"replayed failure {status}"}).encode(),
                       "application/json", headers)
            return
        status, body, ctype, headers = self._route(parts.path, params)
        self._send(h, status, body, ctype, headers)

    def _take_failure(self, path: str) -> tuple[int, dict[str, str]] | None:
        for i, (status, headers, prefix) in enumerate(self._failures):
            if path.startswith(prefix):
                del self._failures[i]
                return status, headers
        if self._fail_always is not None and path.startswith(self._fail_always[2]):
            return self._fail_always[0], self._fail_always[1]
        return None

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
              headers: dict[str, str]) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def _route(self, path: str, params: dict[str, list[str]]) -> tuple[int, bytes, str, dict[str, str]]:
        first = {k: v[0] for k, v in params.items() if v}
        if path == "/api/query":
            return self._arxiv(first)
        if path in ("/api/datasets", "/api/models"):
            if "nomatch" in first.get("search", ""):
                return 200, b"[]", "application/json", {}
            name = "datasets.json" if path.endswith("datasets") else "models.json"
            return self._file(self.fixtures / "hub" / name, "application/json")
        if path.startswith("/api/datasets/"):
            repo = path.removeprefix("/api/datasets/")
            found = self.fixtures / "hub" / "datasets" / (repo.replace("/", "__") + ".json")
            if found.is_file():
                return self._file(found, "application/json")
            return 404, json.dumps({"error": "Repository not found"}).encode(), "application/json", {
                "X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        if path.startswith(_VIEWER_PREFIX + "/"):
            return self._viewer(path.removeprefix(_VIEWER_PREFIX + "/"), first)
        return 404, b'{"error": "Not Found"}', "application/json", {}

    def _arxiv(self, q: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        ctype = "application/atom+xml; charset=utf-8"
        if q.get("id_list"):
            paper = re.sub(r"v\d+$", "", q["id_list"].split(",")[0]).replace("/", "_")
            found = self.fixtures / "arxiv" / f"{paper}.xml"
            return self._file(found if found.is_file() else self.fixtures / "arxiv" / "empty.xml", ctype)
        name = "empty.xml" if "nomatch" in q.get("search_query", "") else "search.xml"
        return self._file(self.fixtures / "arxiv" / name, ctype)

    def _viewer(self, endpoint: str, q: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        folder = self.fixtures / "viewer" / q.get("dataset", "").replace("/", "__")
        if not q.get("dataset") or not folder.is_dir():
            message = ("The dataset does not exist, or is not accessible without authentication (private or "
                       "gated). Please check the spelling of the dataset name or retry with authentication.")
            return 401, json.dumps({"error": message}).encode(), "application/json", {
                "X-Error-Code": "ExternalUnauthenticatedError"}
        if endpoint == "first-rows":
            name = f"first-rows.{q.get('config', '')}.{q.get('split', '')}.json"
        else:
            name = f"{endpoint}.json"
        found = folder / name
        if not found.is_file():
            return 404, b'{"error": "Not found."}', "application/json", {"X-Error-Code": "ResponseNotFound"}
        return self._file(found, "application/json")

    @staticmethod
    def _file(path: Path, ctype: str) -> tuple[int, bytes, str, dict[str, str]]:
        return 200, path.read_bytes(), ctype, {}
