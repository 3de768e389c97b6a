"""The streamable HTTP transport and its exposure rules (M2, M3, M4, part of M7).

Most tests drive the Starlette app in process through httpx2's ASGI transport, with the app's lifespan (the
SDK's session manager) running. One test starts `trex-mcp serve --transport http` on a free loopback port and
talks to it with the SDK client, as a remote host would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from trex_mcp.cli import main as cli_main
from trex_mcp.http import ExposureError, build_http_app
from trex_mcp.server import build_server, close_server
from trex_mcp.settings import Settings

REPO = Path(__file__).resolve().parents[3]
TOKEN = "correct-horse-battery-staple-0123456789"
MiB = 1024 * 1024
INITIALIZE: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "http-test", "version": "0"}}}
JSON_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TREX_AUTH_TOKEN", raising=False)


@asynccontextmanager
async def http_app(settings: Settings, base_url: str = "http://127.0.0.1:8765") -> AsyncIterator[httpx2.AsyncClient]:
    """An httpx2 client wired to the server's ASGI app, with the app's lifespan running."""
    server = build_server(settings)
    app = build_http_app(server, settings)
    try:
        with anyio.fail_after(30):
            async with app.router.lifespan_context(app):
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(transport=transport, base_url=base_url) as client:
                    yield client
    finally:
        close_server(server)


async def post(client: httpx2.AsyncClient, body: bytes | Mapping[str, object] = INITIALIZE, /,
               **headers: str) -> httpx2.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/mcp", content=content, headers={**JSON_HEADERS, **headers})


# ---------------------------------------------------------------------------------------------- loopback (M2)

@pytest.mark.anyio
async def test_a_well_formed_request_on_loopback_is_answered(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home)) as client:
        response = await post(client)
    assert response.status_code == 200
    assert "trex-mcp" in response.text


@pytest.mark.anyio
async def test_a_foreign_host_header_is_refused_with_421(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home)) as client:
        response = await post(client, host="evil.example.com")
    assert response.status_code == 421


@pytest.mark.anyio
async def test_a_foreign_origin_is_refused_with_403(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home)) as client:
        response = await post(client, origin="http://evil.example.com")
        same_machine = await post(client, origin="http://localhost:3000")
    assert response.status_code == 403
    assert same_machine.status_code == 200


@pytest.mark.anyio
async def test_a_post_that_is_not_json_is_refused_with_400(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home)) as client:
        wrong_type = await post(client, b"tools/list please", **{"content-type": "text/plain"})
        bad_json = await post(client, b"{not json")
    assert wrong_type.status_code == 400
    assert bad_json.status_code == 400


@pytest.mark.anyio
async def test_a_body_over_4_mib_is_refused_with_413(trex_home: Path) -> None:
    padding = "x" * (4 * MiB + 1)
    body = {**INITIALIZE, "params": {**INITIALIZE["params"], "padding": padding}}
    async with http_app(Settings(home=trex_home)) as client:
        response = await post(client, body)
    assert response.status_code == 413


@pytest.mark.anyio
async def test_a_loopback_bind_other_than_127_0_0_1_still_checks_the_host_header(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home, http_host="127.0.0.2"), base_url="http://127.0.0.2:8765") as client:
        foreign = await post(client, host="evil.example.com")
        own = await post(client)
    assert foreign.status_code == 421
    assert own.status_code == 200


@pytest.mark.anyio
async def test_malformed_requests_do_not_take_the_server_down(trex_home: Path) -> None:
    async with http_app(Settings(home=trex_home)) as client:
        statuses = [
            (await post(client, b"\xff\xfe\xfa not utf-8 \xc3\x28")).status_code,
            (await post(client, b"[]")).status_code,
            (await post(client, b'{"jsonrpc": "2.0", "id": 1}')).status_code,
            (await post(client, b"")).status_code,
        ]
        for method in ("HEAD", "PUT", "PATCH", "OPTIONS"):
            statuses.append((await client.request(method, "/mcp", headers=JSON_HEADERS)).status_code)
        statuses.append((await client.get("/no/such/route")).status_code)
        after = await post(client)
    assert all(400 <= s < 500 for s in statuses), statuses
    assert after.status_code == 200


# ---------------------------------------------------------------------------------------------- bearer token (M4)

@pytest.mark.anyio
async def test_with_a_token_configured_a_missing_or_wrong_token_is_refused_with_401(trex_home: Path) -> None:
    settings = Settings(home=trex_home, auth_token=SecretStr(TOKEN))
    async with http_app(settings) as client:
        missing = await post(client)
        wrong = await post(client, authorization="Bearer not-the-token")
        wrong_scheme = await post(client, authorization=f"Basic {TOKEN}")
        in_query = await client.post(f"/mcp?access_token={TOKEN}", content=json.dumps(INITIALIZE),
                                     headers=JSON_HEADERS)
        right = await post(client, authorization=f"Bearer {TOKEN}")
    assert [missing.status_code, wrong.status_code, wrong_scheme.status_code, in_query.status_code] == [401] * 4
    assert "Bearer" in missing.headers.get("www-authenticate", "")
    assert right.status_code == 200


@pytest.mark.anyio
async def test_the_token_is_never_echoed_in_a_refusal(trex_home: Path) -> None:
    settings = Settings(home=trex_home, auth_token=SecretStr(TOKEN))
    async with http_app(settings) as client:
        wrong = await post(client, authorization="Bearer guess")
    assert TOKEN not in wrong.text and TOKEN not in str(wrong.headers)


@pytest.mark.anyio
async def test_an_exposed_server_accepts_only_its_allowed_hosts_and_a_valid_token(trex_home: Path) -> None:
    settings = Settings(home=trex_home, http_host="0.0.0.0", allowed_hosts=["mcp.example.com"],  # noqa: S104
                        auth_token=SecretStr(TOKEN))
    async with http_app(settings, base_url="http://mcp.example.com:8765") as client:
        auth = {"authorization": f"Bearer {TOKEN}"}
        foreign_host = await post(client, host="evil.example.com", **auth)
        foreign_origin = await post(client, origin="http://evil.example.com", **auth)
        no_token = await post(client)
        ok = await post(client, origin="https://mcp.example.com", **auth)
    assert foreign_host.status_code == 421
    assert foreign_origin.status_code == 403
    assert no_token.status_code == 401
    assert ok.status_code == 200


# ---------------------------------------------------------------------------------------------- exposure (M3)

@pytest.mark.parametrize("extra", [
    {},
    {"allowed_hosts": ["mcp.example.com"]},
    {"auth_token": SecretStr(TOKEN)},
], ids=["nothing", "hosts-without-token", "token-without-hosts"])
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])  # noqa: S104
def test_a_non_loopback_bind_without_both_a_token_and_allowed_hosts_is_refused(
        trex_home: Path, host: str, extra: dict[str, object]) -> None:
    settings = Settings.model_validate({"home": trex_home, "http_host": host, **extra})
    server = build_server(settings)
    try:
        with pytest.raises(ExposureError, match="refusing to bind"):
            build_http_app(server, settings)
    finally:
        close_server(server)


def test_serve_on_0_0_0_0_without_protection_exits_non_zero_with_the_reason(
        trex_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["serve", "--transport", "http", "--host", "0.0.0.0", "--home", str(trex_home)])  # noqa: S104
    err = capsys.readouterr().err
    assert code != 0
    assert "refusing to bind to 0.0.0.0" in err
    assert "TREX_AUTH_TOKEN" in err and "--allowed-host" in err


# ---------------------------------------------------------------------------------------------- a real socket

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    """Until the server accepts connections (bounded; fails early if it exits)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # polling a subprocess's socket: there is no event to wait on
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {limit_s} s")


@pytest.mark.anyio
async def test_trex_mcp_serve_http_answers_the_sdk_client_on_a_loopback_port(trex_home: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with (tmp_path / "stderr.log").open("wb") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "trex_mcp.cli", "serve", "--transport", "http",
                                 "--port", str(port), "--home", str(trex_home)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog, cwd=REPO, env=env)
    try:
        wait_for_port(port, proc)
        with anyio.fail_after(60):
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                tools = (await client.list_tools()).tools
                result = await client.call_tool("list_tasks", {})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stdout = proc.stdout.read() if proc.stdout else b""
        if proc.stdout:
            proc.stdout.close()
    assert "create_tree" in {t.name for t in tools}
    assert not result.is_error
    assert any(t["name"] == "ftbench/mini/sentiment" for t in result.structured_content["tasks"])
    assert stdout == b""  # the HTTP server keeps stdout clean too; diagnostics go to stderr
