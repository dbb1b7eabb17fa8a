"""Gateway settings, parsed once from the environment.

Variables:
- ``ASYA_GATEWAY_DATABASE_URL``: PostgreSQL DSN (required).
- ``ASYA_GATEWAY_TOKENS``: client bearer tokens, comma-separated; each entry is
  either ``sha256:<hex>`` (preferred: the hash of the token) or a plain token,
  hashed at start. ``ASYA_GATEWAY_TOKENS_FILE``: the same, one entry per line
  (``#`` comments), e.g. a mounted Secret. Both may be set; they add up.
- ``ASYA_GATEWAY_REPORT_TOKEN`` / ``ASYA_GATEWAY_REPORT_TOKEN_FILE``: the token
  sidecars and end actors send on the internal report endpoints (their
  ``ASYA_GATEWAY_TOKEN``), same ``sha256:`` form allowed. A client token does not
  open the report endpoints and the report token does not open the client API.
- ``ASYA_GATEWAY_AUTH=off``: no authentication at all (laptops, tests). Without
  it, a gateway with no tokens configured refuses to start rather than run open.
- ``ASYA_TRANSPORT``, ``ASYA_TRANSPORT_URL``, ``ASYA_TRANSPORT_OPT_*``: the broker
  new jobs are published to, as for the sidecar.
- ``ASYA_GATEWAY_HOST`` / ``ASYA_GATEWAY_PORT`` (``0.0.0.0`` / ``8080``),
  ``ASYA_GATEWAY_KEEPALIVE_S`` (SSE comment interval, 15), ``ASYA_GATEWAY_DB_POOL``
  (pool size, 10), ``ASYA_GATEWAY_LISTEN_CHECK_S`` (how often the LISTEN connection
  is probed, 10; a probe slower than half that, at most 5 s, drops it).
- ``ASYA_GATEWAY_TOOLS``: tool configuration, files or directories of ``*.yaml``
  separated by ``,`` or ``:`` (see ``tools.py``); unset means no tools.

Only hashes are kept in memory after start, so a settings object printed in a
traceback or a debugger shows no token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from asya.engine import aliases
from asya.engine.settings import transport_from_env
from asya.transports import TransportSettings

HASH_PREFIX = "sha256:"


class SettingsError(ValueError):
    """A gateway setting is missing or malformed (the message names the variable)."""


def token_hash(token: str) -> str:
    """The hex SHA-256 of ``token``, the only form in which tokens are kept."""
    return hashlib.sha256(token.encode()).hexdigest()


def _entry_hash(entry: str, variable: str) -> str:
    if entry.startswith(HASH_PREFIX):
        digest = entry[len(HASH_PREFIX) :].strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise SettingsError(f"{variable}: a sha256: entry must be 64 hex digits")
        return digest
    return token_hash(entry)


def _entries(env: Mapping[str, str], variable: str) -> list[str]:
    values = [v.strip() for v in env.get(variable, "").split(",")]
    file_var = f"{variable}_FILE"
    path = env.get(file_var, "")
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise SettingsError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
        values += [line.strip() for line in lines if not line.strip().startswith("#")]
    return [_entry_hash(v, variable) for v in values if v]


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    database_url: str
    """PostgreSQL DSN (``postgresql://user:pass@host:port/db``)."""
    transport: TransportSettings = dataclasses.field(default_factory=TransportSettings)
    """Where new jobs are published."""
    auth: bool = True
    """False only when ``ASYA_GATEWAY_AUTH=off``."""
    client_token_hashes: frozenset[str] = frozenset()
    report_token_hashes: frozenset[str] = frozenset()
    host: str = "0.0.0.0"
    port: int = 8080
    keepalive_s: float = 15.0
    """Seconds between SSE keep-alive comments (proxies close silent streams)."""
    pool_size: int = 10
    listen_check_s: float = 10.0
    """How often the LISTEN connection is probed with ``SELECT 1`` (a silent death is found within ~1.5x)."""
    tool_paths: tuple[Path, ...] = ()
    """Tool YAML files or directories (``ASYA_GATEWAY_TOOLS``), read once at start."""

    @property
    def listen_check_timeout_s(self) -> float:
        return min(self.listen_check_s / 2, 5.0)

    def __repr__(self) -> str:  # the DSN holds a password
        return f"GatewaySettings(transport={self.transport.kind!r}, auth={self.auth}, port={self.port})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        e = aliases.resolve(os.environ if env is None else env)
        dsn = e.get("ASYA_GATEWAY_DATABASE_URL", "")
        if not dsn:
            raise SettingsError("ASYA_GATEWAY_DATABASE_URL is required (postgresql://user:pass@host:port/db)")
        auth_value = e.get("ASYA_GATEWAY_AUTH", "on").strip().lower()
        if auth_value not in ("on", "off"):
            raise SettingsError(f"ASYA_GATEWAY_AUTH must be 'on' or 'off', not {auth_value!r}")
        clients = frozenset(_entries(e, "ASYA_GATEWAY_TOKENS"))
        reports = frozenset(_entries(e, "ASYA_GATEWAY_REPORT_TOKEN"))
        auth = auth_value == "on"
        if auth and not clients:
            raise SettingsError(
                "no client token: set ASYA_GATEWAY_TOKENS or ASYA_GATEWAY_TOKENS_FILE, or ASYA_GATEWAY_AUTH=off"
            )
        if auth and not reports:
            raise SettingsError(
                "no report token: set ASYA_GATEWAY_REPORT_TOKEN(_FILE) (sidecars send it as ASYA_GATEWAY_TOKEN)"
            )
        transport = transport_from_env(e)
        try:
            return cls(
                database_url=dsn,
                transport=transport,
                auth=auth,
                client_token_hashes=clients,
                report_token_hashes=reports,
                host=e.get("ASYA_GATEWAY_HOST", "0.0.0.0"),
                port=int(e.get("ASYA_GATEWAY_PORT", "8080")),
                keepalive_s=max(float(e.get("ASYA_GATEWAY_KEEPALIVE_S", "15")), 0.05),
                pool_size=max(int(e.get("ASYA_GATEWAY_DB_POOL", "10")), 1),
                listen_check_s=max(float(e.get("ASYA_GATEWAY_LISTEN_CHECK_S", "10")), 0.1),
                tool_paths=tuple(
                    Path(p.strip()) for p in re.split(r"[,:]", e.get("ASYA_GATEWAY_TOOLS", "")) if p.strip()
                ),
            )
        except ValueError as exc:
            raise SettingsError(f"a numeric ASYA_GATEWAY_* variable is malformed: {exc}") from None
