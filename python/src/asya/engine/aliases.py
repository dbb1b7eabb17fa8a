"""Environment names users already have (Asya 0.1.x, the onboarding guide), mapped onto ours.

``resolve(env)`` returns a copy of ``env`` where every alias that is set has been
translated to our variable, so the settings loaders read only our names. An
alias and our name (or two aliases) that are both set and disagree is a
start-up error naming both, never a silent pick. Values keep their meaning:
``ASYA_RUNTIME_TIMEOUT`` takes Go durations (``5m``, ``300s``), as 0.1.x wrote them.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping

_Convert = Callable[[str], str]


def _same(value: str) -> str:
    return value


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration_seconds(value: str) -> str:
    """``5m`` -> ``300``, ``1h30m`` -> ``5400``, ``90`` -> ``90`` (plain numbers are seconds)."""
    text = value.strip()
    try:
        return f"{float(text):g}"
    except ValueError:
        pass
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (e.g. 300, 300s, 5m)")
    return f"{sum(float(n) * _GO_UNITS[u] for n, u in parts):g}"


def _port_of(addr: str) -> str:
    """``:8080`` or ``0.0.0.0:8080`` (0.1.x's metrics address) -> ``8080``."""
    port = addr.rsplit(":", 1)[-1]
    if not port.isdigit():
        raise ValueError(f"{addr!r} is not an address with a port (e.g. :8080)")
    return port


# alias -> (our variable, how to convert the value)
ALIASES: dict[str, tuple[str, _Convert]] = {
    "ASYA_ACTOR_NAME": ("ASYA_ACTOR", _same),
    "ASYA_RABBITMQ_URL": ("ASYA_TRANSPORT_URL", _same),
    "ASYA_RABBITMQ_EXCHANGE": ("ASYA_TRANSPORT_OPT_EXCHANGE", _same),
    "ASYA_RABBITMQ_PREFETCH": ("ASYA_PREFETCH", _same),
    "ASYA_RUNTIME_TIMEOUT": ("ASYA_PROCESSING_TIMEOUT_S", go_duration_seconds),
    "ASYA_ACTOR_HAPPY_END": ("ASYA_HAPPY_END_ACTOR", _same),
    "ASYA_ACTOR_ERROR_END": ("ASYA_ERROR_END_ACTOR", _same),
    "ASYA_STEP_HAPPY_END": ("ASYA_HAPPY_END_ACTOR", _same),
    "ASYA_STEP_ERROR_END": ("ASYA_ERROR_END_ACTOR", _same),
    "ASYA_SQS_ENDPOINT": ("ASYA_TRANSPORT_URL", _same),
    "ASYA_AWS_REGION": ("AWS_REGION", _same),
    "ASYA_METRICS_ADDR": ("ASYA_HTTP_PORT", _port_of),
    "ASYA_SOCKETS_DIR": ("ASYA_SOCKET_DIR", _same),
}

_RABBITMQ_PARTS = ("ASYA_RABBITMQ_HOST", "ASYA_RABBITMQ_PORT", "ASYA_RABBITMQ_USERNAME", "ASYA_RABBITMQ_PASSWORD")


class ConflictingSettings(ValueError):
    """Two names for one setting were set to different values."""


def _rabbitmq_url_from_parts(env: Mapping[str, str]) -> str | None:
    # A Service named asya-rabbitmq makes Kubernetes inject ASYA_RABBITMQ_PORT=tcp://ip:port (a
    # service link) into every later pod of the namespace: that is not the 0.1.x port setting.
    if "://" in env.get("ASYA_RABBITMQ_PORT", ""):
        env = {k: v for k, v in env.items() if k != "ASYA_RABBITMQ_PORT"}
    if not any(env.get(k) for k in _RABBITMQ_PARTS):
        return None
    user = urllib.parse.quote(env.get("ASYA_RABBITMQ_USERNAME", "guest"), safe="")
    password = urllib.parse.quote(env.get("ASYA_RABBITMQ_PASSWORD", "guest"), safe="")
    host = env.get("ASYA_RABBITMQ_HOST", "localhost")
    port = env.get("ASYA_RABBITMQ_PORT", "5672")
    return f"amqp://{user}:{password}@{host}:{port}/"


def resolve(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with every alias translated to our name; ``ConflictingSettings`` when two names disagree."""
    out = dict(env)
    source: dict[str, str] = {name: name for name in env if not name.startswith("ASYA_RABBITMQ_")}
    candidates: list[tuple[str, str, str]] = []  # (ours, value, where it came from)
    for alias, (ours, convert) in ALIASES.items():
        if env.get(alias):
            candidates.append((ours, convert(env[alias]), alias))
    url = _rabbitmq_url_from_parts(env)
    if url is not None:
        candidates.append(("ASYA_TRANSPORT_URL", url, "ASYA_RABBITMQ_HOST/_PORT/_USERNAME/_PASSWORD"))
    for ours, value, where in candidates:
        if out.get(ours) and out[ours] != value:
            raise ConflictingSettings(
                f"{source.get(ours, ours)}={_shown(ours, out[ours])} and {where}={_shown(ours, value)} set the same "
                "setting to different values; keep one of them"
            )
        out[ours] = value
        source.setdefault(ours, where)
        if ours == "ASYA_TRANSPORT_URL" and where.startswith("ASYA_RABBITMQ") and not env.get("ASYA_TRANSPORT"):
            out["ASYA_TRANSPORT"] = "rabbitmq"
        if where == "ASYA_SQS_ENDPOINT" and not env.get("ASYA_TRANSPORT"):
            out["ASYA_TRANSPORT"] = "sqs"
    return out


def _shown(name: str, value: str) -> str:
    """A value fit for an error message: URLs lose their password (secrets never reach logs)."""
    if "URL" in name:
        parsed = urllib.parse.urlsplit(value)
        if parsed.password:
            return repr(value.replace(f":{parsed.password}@", ":***@"))
    return repr(value)
