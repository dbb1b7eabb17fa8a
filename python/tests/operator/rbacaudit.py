"""What a ClusterRole grants and what a user really called, as comparable sets.

A permission is ``(apiGroup, resource[/subresource], verb)``, the core group spelled "".
A rule limited by ``resourceNames`` grants ``(apiGroup, resource#name, verb)`` per name,
and a request for such a (group, resource, verb) is counted with its object's name.
The used set comes from apiserver audit events (``controlplane.ControlPlane.audit_events``)
of one user: requests sent with that user's own credentials, not admins impersonating it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

Permission = tuple[str, str, str]


def granted(role: Mapping[str, Any]) -> set[Permission]:
    """Every permission the ClusterRole's rules spell out; wildcards are refused, not expanded."""
    out: set[Permission] = set()
    for rule in role.get("rules") or []:
        if rule.get("nonResourceURLs"):
            raise ValueError(f"rule {rule} is not a resource rule; compare it by hand")
        names = rule.get("resourceNames") or [""]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if "*" in (group, resource, verb):
                        raise ValueError(f"wildcard in rule {rule}: a wildcard can never equal what is used")
                    out.update((group, f"{resource}#{name}" if name else resource, verb) for name in names)
    return out


def named(perms: Iterable[Permission]) -> set[Permission]:
    """The (group, resource, verb) triples that ``perms`` grant only for some names."""
    return {(g, r.split("#", 1)[0], v) for g, r, v in perms if "#" in r}


def format_permissions(perms: Iterable[Permission]) -> str:
    return "\n".join(f"  {group or 'core'} {resource} {verb}" for group, resource, verb in sorted(perms)) or "  -"


@dataclasses.dataclass
class Usage:
    used: set[Permission] = dataclasses.field(default_factory=set)
    """Every permission a request of the user needed."""
    denied: list[str] = dataclasses.field(default_factory=list)
    """Requests refused with 403, as 'verb path'."""
    requests: int = 0
    """Requests of the user seen in the log (resource and non-resource)."""


def usage(events: Iterable[Mapping[str, Any]], username: str, by_name: Iterable[Permission] = ()) -> Usage:
    """The permissions ``username``'s requests needed, from audit events (any stage).

    Requests matching a triple of ``by_name`` (see ``named``) count with the object's name.
    """
    by_name = set(by_name)
    u = Usage()
    seen: set[str] = set()
    for ev in events:
        if (ev.get("user") or {}).get("username") != username or ev.get("impersonatedUser"):
            continue
        if ev.get("auditID") not in seen:
            seen.add(str(ev.get("auditID")))
            u.requests += 1
        code = int((ev.get("responseStatus") or {}).get("code") or 0)
        decision = (ev.get("annotations") or {}).get("authorization.k8s.io/decision")
        if code == 403 or decision == "forbid":
            u.denied.append(f"{ev.get('verb')} {ev.get('requestURI')}")
        ref = ev.get("objectRef")
        if not ref:  # discovery (/api, /apis, /version): open to every authenticated user
            continue
        resource = str(ref.get("resource", ""))
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        group = str(ref.get("apiGroup") or "")
        verb = str(ev.get("verb"))
        if (group, resource, verb) in by_name:
            resource += f"#{ref.get('name') or ''}"
        u.used.add((group, resource, verb))
        # A server-side apply that creates the object (201) was authorized for create as
        # well as patch, inside the request; the audit event only names the patch.
        if verb == "patch" and code == 201:
            u.used.add((group, resource, "create"))
    return u
