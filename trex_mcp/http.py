"""Streamable HTTP transport with the project's exposure rules.

- By default the server binds to 127.0.0.1, with the SDK's DNS-rebinding protection (Host and Origin checked).
- Any other bind address is refused unless both a bearer token (TREX_AUTH_TOKEN) and allowed hosts are
  configured; the token is then required on every request (401 otherwise) and checked in constant time.
- Tokens are accepted only in the Authorization header, never in the query string, and never forwarded upstream.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from trex_mcp.errors import TrexError
from trex_mcp.settings import Settings

LOOPBACK_NAMES = {"localhost"}
SCOPE = "trex"


class ExposureError(TrexError):
    """The HTTP bind would expose the server without protection."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse a non-loopback bind unless a token and allowed hosts are both configured."""
    if is_loopback(settings.http_host):
        return
    missing = [name for name, ok in (("a bearer token (env TREX_AUTH_TOKEN)", settings.auth_token is not None),
                                     ("allowed hosts (--allowed-host)", bool(settings.allowed_hosts))) if not ok]
    if missing:
        raise ExposureError(f"refusing to bind to {settings.http_host}: binding beyond loopback needs "
                            + " and ".join(missing), field="http_host",
                            hint="bind to 127.0.0.1, or configure both")


def resource_url(settings: Settings) -> str:
    host = settings.allowed_hosts[0] if settings.allowed_hosts and not is_loopback(settings.http_host) else "127.0.0.1"
    host = host.split(":")[0]
    return f"http://{host}:{settings.http_port}/mcp"


def auth_kwargs(settings: Settings) -> dict[str, Any]:
    """MCPServer constructor arguments for bearer-token auth, or {} when no token is configured."""
    if settings.auth_token is None:
        return {}
    from mcp.server.auth.provider import AccessToken, TokenVerifier
    from mcp.server.auth.settings import AuthSettings

    secret = settings.auth_token.get_secret_value()
    url = resource_url(settings)

    class StaticTokenVerifier(TokenVerifier):
        async def verify_token(self, token: str) -> AccessToken | None:
            if hmac.compare_digest(token.encode(), secret.encode()):
                return AccessToken(token=token, client_id="trex-operator", scopes=[SCOPE], resource=url)
            return None

    return {"token_verifier": StaticTokenVerifier(),
            "auth": AuthSettings(issuer_url=url.rsplit("/mcp", 1)[0], resource_server_url=url,
                                 required_scopes=[SCOPE], validate_token_resource=True)}


def _host_literal(host: str) -> str:
    """`host` as it appears in a Host header: IPv6 addresses in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def transport_security(settings: Settings) -> Any:
    """The Host and Origin allow-lists for `settings`, always with DNS-rebinding protection on.

    On loopback: 127.0.0.1, localhost, [::1], the bind address itself and any configured allowed hosts (the SDK's
    automatic protection covers only 127.0.0.1, localhost and ::1 binds, so e.g. 127.0.0.2 would get none).
    Off loopback: the configured allowed hosts only. Each name is accepted with any port.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    names = list(settings.allowed_hosts)
    if is_loopback(settings.http_host):
        names = ["127.0.0.1", "localhost", "[::1]", _host_literal(settings.http_host), *names]
    hosts = list(dict.fromkeys(h for name in names for h in (name, f"{name}:*")))
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")])


def build_http_app(server: Any, settings: Settings) -> Any:
    """The Starlette app for `server` under the exposure rules. Raises ExposureError."""
    check_exposure(settings)
    return server.streamable_http_app(host=settings.http_host, transport_security=transport_security(settings),
                                      max_request_body_size=4 * 1024 * 1024)
