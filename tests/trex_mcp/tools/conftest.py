"""An in-memory MCP server over a fresh trex home, and a connected client."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from trex_mcp.lab import Lab
from trex_mcp.server import build_server, close_server
from trex_mcp.settings import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(trex_home: Path) -> Settings:
    return Settings(home=trex_home, heartbeat_s=1.0)


@pytest.fixture
def lab(settings: Settings) -> Iterator[Lab]:
    the_lab = Lab(settings)
    yield the_lab
    the_lab.close()


@pytest.fixture
def server(settings: Settings, lab: Lab):  # type: ignore[no-untyped-def]
    srv = build_server(settings, lab=lab)
    yield srv
    close_server(srv)


@pytest.fixture
async def client(server) -> AsyncIterator[Client]:  # type: ignore[no-untyped-def]
    async with Client(server) as c:
        yield c
