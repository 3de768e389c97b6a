"""The stdio transport and the legacy (handshake) protocol era.

Most tests cross the process boundary: `trex-mcp` runs as a subprocess, as a desktop host starts it.

Two kinds of client: the SDK's `Client(StdioServerParameters(...))`, and a hand-written JSON-RPC peer that owns
the server's stdin and stdout pipes, so every byte the server writes on stdout is seen and checked (M1: stdout
carries only protocol messages, even across a real training round). Closing stdin must end the server within
5 s with its committed state intact (J8).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent, TextResourceContents

REPO = Path(__file__).resolve().parents[3]
PROTOCOL = "2025-11-25"
CANARY = "hf_canaryTOKENthatmustneverleak0123456789"


def server_command() -> list[str]:
    """The installed console script when there is one, else the module (same entry point)."""
    script = Path(sys.executable).parent / "trex-mcp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "trex_mcp.cli"]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The test process's offline environment (set by tests/conftest.py), pointed at `home`.

    The repository root goes first on PYTHONPATH so the subprocess runs this checkout's code whatever state
    the editable install is in.
    """
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TREX_HOME": str(home), "PYTHONPATH": path, **extra}


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def is_jsonrpc_message(line: bytes) -> bool:
    """True when `line` is one JSON-RPC 2.0 request, notification or response (what stdio may carry)."""
    try:
        msg = json.loads(line)
    except ValueError:
        return False
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        return False
    if "method" in msg:
        return isinstance(msg["method"], str)
    return "id" in msg and (("result" in msg) != ("error" in msg))


class RawStdioServer:
    """`trex-mcp --home <home>` with its pipes held by the test; speaks JSON-RPC by hand.

    Every stdout line is kept in `lines`, so a test can check that nothing but protocol messages was written.
    """

    def __init__(self, home: Path, *, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.stderr_path = home.parent / "server-stderr.log"
        self.lines: list[bytes] = []
        self._ids = itertools.count(1)
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        with self.stderr_path.open("wb") as errlog:
            self.proc = subprocess.Popen([*server_command(), "--home", str(home)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=errlog, cwd=REPO,
                                         env=env or server_env(home))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._inbox.put(line)
        self._inbox.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def write_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None, *,
                timeout_s: float = 30.0) -> dict[str, Any]:
        """Send a request and return its response's `result`; fails the test on an error or a timeout."""
        msg_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, **({"params": params} if params else {})})
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no answer to {method} within {timeout_s} s; stderr:\n{self.stderr()}")
            try:
                line = self._inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"server closed stdout while waiting for {method}; stderr:\n{self.stderr()}")
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # reported by the stdout check
            if isinstance(msg, dict) and msg.get("id") == msg_id and "method" not in msg:
                assert "error" not in msg, msg
                result: dict[str, Any] = msg["result"]
                return result

    def call_tool(self, name: str, arguments: dict[str, Any], *, timeout_s: float = 30.0) -> dict[str, Any]:
        """tools/call; returns the structured result, failing the test when the tool answered is_error."""
        result = self.request("tools/call", {"name": name, "arguments": arguments}, timeout_s=timeout_s)
        assert not result.get("isError"), f"{name}: {result['content'][0]['text']}"
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    def handshake(self) -> dict[str, Any]:
        result = self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                             "clientInfo": {"name": "raw-test", "version": "0"}}, timeout_s=60.0)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def close_stdin_and_wait(self, timeout_s: float = 5.0) -> float:
        """Close stdin (a host quitting) and return how long the server took to exit."""
        assert self.proc.stdin is not None
        start = time.monotonic()
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running {timeout_s} s after stdin closed") from None
        elapsed = time.monotonic() - start
        self._reader.join(timeout=5)
        return elapsed

    def non_protocol_lines(self) -> list[bytes]:
        return [line for line in self.lines if not is_jsonrpc_message(line)]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def raw_server(trex_home: Path) -> Iterator[RawStdioServer]:
    server = RawStdioServer(trex_home, env=server_env(trex_home, HF_TOKEN=CANARY))
    yield server
    server.kill()
    kill_workers(trex_home)  # workers outlive their server by design; not past the test


@pytest.mark.anyio
async def test_a_legacy_jsonrpc_client_gets_the_same_tools_results_and_errors(server) -> None:  # type: ignore[no-untyped-def]
    async with Client(server, mode="legacy") as client:
        assert client.protocol_version == PROTOCOL
        tools = (await client.list_tools()).tools
        tasks = await client.call_tool("list_tasks", {})
        missing = await client.call_tool("get_tree", {"tree_id": "0123456789abcdef"})
        invalid = await client.call_tool("get_run_log", {"run_id": "abcdefgh1234", "lines": 0})
        resource = await client.read_resource("trex://tasks")
    assert len(tools) >= 20 and all(t.input_schema.get("additionalProperties") is False for t in tools)
    assert not tasks.is_error and tasks.structured_content["tasks"]
    assert missing.is_error and "0123456789abcdef" in text_of(missing)
    assert invalid.is_error and "lines" in text_of(invalid)
    assert isinstance(resource.contents[0], TextResourceContents)
    assert "ftbench/mini/sentiment" in resource.contents[0].text


@pytest.mark.anyio
async def test_the_sdk_client_lists_tools_and_calls_list_tasks_over_stdio(trex_home: Path, tmp_path: Path) -> None:
    command, *prefix = server_command()
    params = StdioServerParameters(command=command, args=[*prefix, "--home", str(trex_home)],
                                   env=server_env(trex_home), cwd=str(REPO))
    with (tmp_path / "stderr.log").open("w") as errlog:
        with anyio.fail_after(60):
            async with Client(stdio_client(params, errlog=errlog)) as client:
                tools = (await client.list_tools()).tools
                result = await client.call_tool("list_tasks", {})
    assert {"create_tree", "wait_round", "list_tasks"} <= {t.name for t in tools}
    assert not result.is_error
    assert "ftbench/mini/sentiment" in {t["name"] for t in result.structured_content["tasks"]}


def test_stdout_carries_only_jsonrpc_and_the_server_exits_within_5_s_of_stdin_closing(
        raw_server: RawStdioServer) -> None:
    init = raw_server.handshake()
    assert init["protocolVersion"] == PROTOCOL
    assert init["serverInfo"]["name"] == "trex-mcp"
    for garbage in (b"{not json\n", b"\xff\xfe\xc3\x28 not utf-8\n", b"[1, 2, 3]\n", b"\n",
                    b'{"jsonrpc": "2.0", "id": 99, "method": "no/such/method"}\n',
                    b'{"jsonrpc": "2.0", "id": 98, "method": "tools/call", "params": "oops"}\n',
                    b'{"jsonrpc": "2.0", "id": 97, "method": "tools/call", "params": {"name": "x" , "arguments": '
                    + b'{"a": "' + b"y" * 3_000_000 + b'"}}}\n'):
        raw_server.write_raw(garbage)  # M7: malformed input must not end the session
    tools = raw_server.request("tools/list")["tools"]
    assert len(tools) >= 20
    tasks = raw_server.call_tool("list_tasks", {})["tasks"]
    assert any(t["name"] == "ftbench/mini/sentiment" for t in tasks)
    bad = raw_server.request("tools/call", {"name": "get_tree", "arguments": {"tree_id": "no-such-tree-id"}})
    assert bad["isError"]

    elapsed = raw_server.close_stdin_and_wait(5.0)

    assert elapsed <= 5.0
    assert raw_server.proc.returncode == 0, raw_server.stderr()
    assert raw_server.lines and raw_server.non_protocol_lines() == []


@pytest.mark.timeout(240)
def test_a_real_training_round_over_stdio_writes_only_protocol_messages_on_stdout(
        raw_server: RawStdioServer) -> None:
    """create_tree -> wait the baseline -> propose a one-run round -> launch -> wait -> diagnosis, then quit."""
    raw_server.handshake()
    tree = raw_server.call_tool("create_tree", {
        "task": "ftbench/mini/sentiment", "name": "stdio round",
        "budget": {"max_rounds": 1, "runs_per_round": 1, "max_samples_per_round": 300}}, timeout_s=60)
    root = wait_until_done(raw_server, tree["root_node_id"])
    assert root["state"] == "COMPLETE", root

    plan = {"strategy_kind": "refine_data", "direction": "train on the clean source",
            "hypothesis": "clean, correctly labelled reviews teach the label format",
            "runs": [{"label": "clean", "recipe": {"sources": [{"kind": "task", "name": "clean"}]},
                      "config": {"max_steps": 30, "learning_rate": 0.005, "batch_size": 16, "max_length": 128,
                                 "scheduler": "constant"}}]}
    node = raw_server.call_tool("propose_round", {"tree_id": tree["tree_id"], "parent_id": root["node_id"],
                                                  "plan": plan})
    raw_server.call_tool("launch_round", {"node_id": node["node_id"]})
    status = wait_until_done(raw_server, node["node_id"])
    assert status["state"] == "COMPLETE", status
    assert status["score"] is not None
    diagnosis = raw_server.call_tool("get_diagnosis", {"node_id": node["node_id"]})
    assert diagnosis["state"] == "COMPLETE"

    elapsed = raw_server.close_stdin_and_wait(5.0)

    assert elapsed <= 5.0
    assert raw_server.non_protocol_lines() == [], raw_server.non_protocol_lines()[:5]
    assert not any(CANARY.encode() in line for line in raw_server.lines)
    assert_committed(raw_server.home, tree["tree_id"], node["node_id"])
    assert_canary_absent(raw_server.home)


def test_closing_stdin_while_a_run_trains_exits_within_5_s_and_leaves_the_worker_running(
        raw_server: RawStdioServer) -> None:
    """J8: the host quits mid-run. The server exits promptly; the worker, in its own process group, keeps going
    (the next server start re-attaches it), and the store still says RUNNING."""
    raw_server.handshake()
    tree = raw_server.call_tool("create_tree", {"task": "ftbench/mini/sentiment",
                                                "budget": {"max_rounds": 1, "runs_per_round": 1}}, timeout_s=60)
    run_id = wait_until_running(raw_server, tree["root_node_id"])

    elapsed = raw_server.close_stdin_and_wait(5.0)

    assert elapsed <= 5.0
    assert raw_server.non_protocol_lines() == []
    from tree_store import SQLiteTreeStore, State

    store = SQLiteTreeStore(raw_server.home / "trex.sqlite3")
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    assert run.state == State.RUNNING and run.job.get("pgid")
    os.killpg(int(run.job["pgid"]), 0)  # the worker's group is alive after the server is gone


def wait_until_running(server: RawStdioServer, node_id: str, *, limit_s: float = 60.0) -> str:
    """The id of the round's first run once its worker is RUNNING (bounded polling of get_node)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        run = server.call_tool("get_node", {"node_id": node_id})["runs"][0]
        assert run["state"] in ("WAITING", "RUNNING"), run
        if run["state"] == "RUNNING":
            return str(run["run_id"])
        time.sleep(0.1)  # polling another process: there is no event to wait on
    raise AssertionError(f"no run of {node_id} started within {limit_s} s")


def kill_workers(home: Path) -> None:
    """SIGKILL the process groups of the training workers this test's server started (by their recorded ids)."""
    import signal

    from tree_store import SQLiteTreeStore

    if not (home / "trex.sqlite3").exists():
        return
    store = SQLiteTreeStore(home / "trex.sqlite3")
    try:
        groups = {int(r.job["pgid"]) for t in store.list_trees() for n in store.list_nodes(t.id)
                  for r in store.list_runs(n.id) if r.job.get("pgid") and not r.state.is_finished()}
    finally:
        store.close()
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def wait_until_done(server: RawStdioServer, node_id: str, *, limit_s: float = 150.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        status = server.call_tool("wait_round", {"node_id": node_id, "timeout_s": 20}, timeout_s=40)
        if status["done"]:
            return status
    raise AssertionError(f"round {node_id} not done within {limit_s} s; stderr:\n{server.stderr()}")


def assert_committed(home: Path, tree_id: str, node_id: str) -> None:
    """The store, reopened after the server exited, holds the finished round."""
    from tree_store import SQLiteTreeStore, State

    store = SQLiteTreeStore(home / "trex.sqlite3")
    try:
        assert store.get_tree(tree_id).base_score is not None
        node = store.get_node(node_id)
        assert node.state == State.COMPLETE and node.score is not None
        assert all(run.state == State.COMPLETE for run in store.list_runs(node_id))
    finally:
        store.close()


def assert_canary_absent(home: Path) -> None:
    """V6: the HF token in the server's environment appears in no file the server or its workers wrote."""
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert CANARY.encode() not in path.read_bytes(), path
