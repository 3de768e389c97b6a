"""Shared pieces for the agents tests: a loopback OpenAI-compatible replay server and a search runner.

The replay server answers `POST /v1/chat/completions` with scripted `chat.completion` JSON (usage included), in
order, and records every request it saw, so tests can check what the planner sent back after an invalid answer.
`run_search` drives a whole search in this process through `AutonomousDriver` (the in-memory MCP client), with
real training jobs, and returns the summary and a read-only view of the store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from ftbench.registry import load_task
from trex_mcp.agents.state import PlanningState
from trex_mcp.settings import Settings

API_KEY = "sk-canary-7f3e9a1b2c4d"  # planted: must never appear in an error, a record or a log


@dataclass
class Answer:
    """One scripted reply: a chat message content (status 200), or a raw status and JSON body."""

    content: str | None = None
    status: int = 200
    body: dict[str, Any] | None = None
    tokens: tuple[int, int] = (100, 20)  # prompt, completion


@dataclass
class Seen:
    """One request the replay server received."""

    body: dict[str, Any]
    authorization: str


@dataclass
class ReplayServer:
    """Answers chat completions from a script; `fallback` (if set) answers once the script is used up."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    fallback: Answer | None = None
    seen: list[Seen] = field(default_factory=list)
    tokens_served: int = 0

    def next_answer(self) -> Answer:
        if self.answers:
            return self.answers.pop(0)
        if self.fallback is not None:
            return self.fallback
        return Answer(status=500, body={"error": {"message": "replay script exhausted", "type": "server_error"}})

    def user_texts(self, index: int) -> list[str]:
        """The user messages of the `index`-th request."""
        return [m["content"] for m in self.seen[index].body["messages"] if m["role"] == "user"]


def _completion(answer: Answer, model: str, number: int) -> dict[str, Any]:
    prompt, completion = answer.tokens
    return {"id": f"chatcmpl-replay-{number}", "object": "chat.completion", "created": 1_700_000_000 + number,
            "model": model, "system_fingerprint": "replay",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer.content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def _handler(replay: ReplayServer, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with lock:
                replay.seen.append(Seen(body=body, authorization=self.headers.get("Authorization", "")))
                answer = replay.next_answer()
                number = len(replay.seen)
                if answer.status == 200:
                    replay.tokens_served += sum(answer.tokens)
            if answer.status != 200:
                self._send(answer.status, answer.body or {})
                return
            self._send(200, _completion(answer, str(body.get("model", "replay")), number))

    return Handler


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A replay server on 127.0.0.1 (random port), stopped after the test."""
    lock = threading.Lock()
    state = ReplayServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, lock))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def planning_state(*, runs_per_round: int = 3, rejections: list[str] | None = None) -> PlanningState:
    """A planning state for expanding the root of a mini/sentiment tree."""
    task = load_task("ftbench/mini/sentiment").model_dump(mode="json")
    root = {"node_id": "root-node-0001", "number": 0, "parent_id": None, "strategy": "baseline"}
    return PlanningState(task=task, parent=root, parent_runs=[], all_runs=[], path=[root], context_text="",
                         runs_per_round=runs_per_round, max_samples=4000, higher_is_better=True, round_index=0,
                         rejections=list(rejections or []))


# ---------------------------------------------------------------------------- whole searches


@pytest.fixture(scope="session")
def agents_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trex home for the in-process searches of this folder: the tiny model and caches are built once."""
    return tmp_path_factory.mktemp("agents-home")


@dataclass
class SearchResult:
    """What a finished in-process search left behind."""

    summary: dict[str, Any] | None
    tree_id: str
    settings: Settings
    output: str


def run_search(settings: Settings, options: Any, *, planner: Any = None) -> SearchResult:
    """Run one whole search through AutonomousDriver (in-memory MCP client) and close the server after it."""
    import io

    from trex_mcp.agents.driver import AutonomousDriver
    from trex_mcp.lab import Lab
    from trex_mcp.server import build_server, close_server

    lab = Lab(settings)
    server = build_server(settings, lab=lab)
    out = io.StringIO()
    driver = AutonomousDriver(server, options, lab=lab, out=out, planner=planner)
    try:
        summary = anyio.run(driver.run)
    finally:
        close_server(server)
    assert driver.tree_id is not None
    return SearchResult(summary=summary, tree_id=driver.tree_id, settings=settings, output=out.getvalue())
