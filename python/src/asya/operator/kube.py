"""A small async Kubernetes REST client for the operator's children.

kopf talks to the API for the AsyncActors themselves; this client reads and writes the
children (ConfigMap, Deployment/StatefulSet, KEDA objects). It does server-side apply
(PATCH ``application/apply-patch+yaml``) so re-applying the same manifest is idempotent
and no duplicates can appear after a crash, and it counts its writes (the benchmark and
the fault-injection knob use the counter). Credentials come from the same place kopf's
login uses (in-cluster ServiceAccount or ``$KUBECONFIG``), see ``Credentials.load``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

# kind -> (API prefix, plural); everything the operator creates
RESOURCES: dict[str, tuple[str, str]] = {
    "ConfigMap": ("/api/v1", "configmaps"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "ScaledObject": ("/apis/keda.sh/v1alpha1", "scaledobjects"),
    "TriggerAuthentication": ("/apis/keda.sh/v1alpha1", "triggerauthentications"),
}


class KubeError(RuntimeError):
    """The API refused a request; ``status`` is the HTTP code, the message is the API's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Where the API is and how to authenticate."""

    server: str
    """https://host:port"""
    token: str = ""
    """Bearer token, if any."""
    ca_path: str = ""
    """CA bundle file; empty = system CAs."""
    cert_path: str = ""
    """Client certificate file, if any."""
    key_path: str = ""
    """Client key file, if any."""
    insecure: bool = False
    """Skip TLS verification (never in production)."""

    @classmethod
    def load(cls) -> Credentials:
        """In-cluster ServiceAccount if present, else ``$KUBECONFIG``/~/.kube/config."""
        from kubernetes import client, config

        cfg = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            # explicit: the library reads $KUBECONFIG once, at import time
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=cfg
            )
        auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken") or ""
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
        return cls(
            server=str(cfg.host),
            token=token,
            ca_path=cfg.ssl_ca_cert or "",
            cert_path=cfg.cert_file or "",
            key_path=cfg.key_file or "",
            insecure=not cfg.verify_ssl,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting ``ca_path`` and presenting the client certificate."""
        ctx = ssl.create_default_context(cafile=self.ca_path or None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_path:
            ctx.load_cert_chain(self.cert_path, self.key_path or None)
        return ctx


def object_path(kind: str, namespace: str, name: str = "") -> str:
    """REST path of a namespaced object (or its collection when ``name`` is empty)."""
    prefix, plural = RESOURCES[kind]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def field_owners(obj: Mapping[str, Any], *path: str) -> set[tuple[str, str]]:
    """(manager, operation) pairs whose managedFields entry owns the field at ``path``."""
    owners = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        node: Any = entry.get("fieldsV1") or {}
        for key in path:
            node = node.get(f"f:{key}") if isinstance(node, dict) else None
        if node is not None:
            owners.add((str(entry.get("manager", "")), str(entry.get("operation", ""))))
    return owners


class KubeClient:
    """get / apply / delete for the operator's children, over one aiohttp session."""

    def __init__(
        self,
        creds: Credentials,
        field_manager: str,
        crash_after_writes: int = 0,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self._creds = creds
        self._field_manager = field_manager
        self._crash_after = crash_after_writes
        # called before every child write: with leader election it ends the process when the
        # Lease may have passed to another replica (asya.operator.leader)
        self._fence = fence or (lambda: None)
        self._session: aiohttp.ClientSession | None = None
        self.writes = 0
        """Write requests sent (apply + delete)."""

    async def __aenter__(self) -> KubeClient:
        self._session = self._new_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _new_session(self) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {self._creds.token}"} if self._creds.token else {}
        return aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=self._creds.ssl_context(), limit=32),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def request(
        self, method: str, path: str, *, ok_statuses: tuple[int, ...] = (), **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """One raw API request (Lease, CRD): not counted as a child write, not fenced.

        A status in ``ok_statuses`` (e.g. 404, 409) is returned instead of raised.
        """
        return await self._request(method, path, ok_statuses=ok_statuses, **kwargs)

    async def _request(
        self, method: str, path: str, *, ok404: bool = False, ok_statuses: tuple[int, ...] = (), **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """Send one request; on 401 reload the credentials (rotated token) and try once more."""
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        url = self._creds.server.rstrip("/") + path  # keeps a path prefix (API proxies)
        for attempt in (1, 2):
            async with self._session.request(method, url, **kwargs) as resp:
                status, text = resp.status, await resp.text()
            if status == 401 and attempt == 1:
                self._creds = await asyncio.to_thread(Credentials.load)
                old, self._session = self._session, self._new_session()
                await old.close()
                continue
            break
        if status == 404 and ok404:
            return status, {}
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"message": text}
        if status >= 400 and status not in ok_statuses:
            raise KubeError(status, str(body.get("message", text))[:500])
        return status, dict(body)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        status, body = await self._request("GET", object_path(kind, namespace, name), ok404=True)
        return None if status == 404 else body

    def _count_write(self) -> None:
        self.writes += 1
        if self._crash_after and self.writes >= self._crash_after:
            os._exit(137)  # fault injection for tests: die as if SIGKILLed mid-reconcile

    @property
    def field_manager(self) -> str:
        """The field manager of the operator's own applies."""
        return self._field_manager

    async def apply(
        self, manifest: Mapping[str, Any], *, field_manager: str = "", force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply ``manifest`` (create or update) and return the stored object.

        ``field_manager`` overrides the client's own; without ``force`` a conflict with
        another manager is a ``KubeError`` with status 409.
        """
        meta = manifest["metadata"]
        path = object_path(str(manifest["kind"]), str(meta["namespace"]), str(meta["name"]))
        params = {"fieldManager": field_manager or self._field_manager}
        if force:
            params["force"] = "true"
        self._fence()
        _, body = await self._request(
            "PATCH",
            path,
            params=params,
            headers={"Content-Type": "application/apply-patch+yaml"},
            data=json.dumps(manifest),
        )
        self._count_write()
        return body

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete the object (background propagation); False when it was already gone."""
        path = object_path(kind, namespace, name)
        self._fence()
        status, _ = await self._request("DELETE", path, ok404=True, params={"propagationPolicy": "Background"})
        if status == 404:
            return False
        self._count_write()
        return True
