"""Keep the served AsyncActor CRD at this operator's version (``ASYA_OPERATOR_MANAGE_CRDS``).

Helm installs files under a chart's ``crds/`` once and never upgrades them, so a
``helm upgrade`` that brings a CRD with a new field would leave the old schema served
(and the API would prune the new field from every actor). With management on, the
operator server-side applies the CRD packaged with it (``crds/asyncactor.yaml`` next to
this module, a copy of the repository's ``crds/asyncactor.yaml``) before it starts
watching, as field manager ``asya-operator`` with ``force`` (taking over the fields the
first install or Argo CD wrote). With leader election only the leader does it, after
acquiring the Lease. The CRD must already exist: creating CRDs is a cluster-wide right
the ClusterRole does not grant (get/patch are limited to this one CRD by name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from importlib import resources
from typing import Any

import yaml

from asya.operator.kube import KubeClient, KubeError

log = logging.getLogger("asya.operator.crd")

GROUP, VERSION, PLURAL = "asya.sh", "v1alpha1", "asyncactors"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_PATH = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"


def packaged_crd() -> dict[str, Any]:
    """The CRD this operator was built with."""
    text = resources.files("asya.operator").joinpath("crds/asyncactor.yaml").read_text(encoding="utf-8")
    crd = yaml.safe_load(text)
    if not isinstance(crd, dict) or crd.get("metadata", {}).get("name") != CRD_NAME:
        raise RuntimeError(f"the packaged CRD is not {CRD_NAME}")
    return crd


def _condition(crd: dict[str, Any], ctype: str) -> dict[str, Any]:
    for cond in (crd.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


async def apply_crd(client: KubeClient, *, field_manager: str, timeout_s: float = 60.0, retry_s: float = 2.0) -> None:
    """Apply the packaged CRD and wait until it is Established; raise when that cannot be done."""
    crd = packaged_crd()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await client.request(
                "PATCH",
                CRD_PATH,
                params={"fieldManager": field_manager, "force": "true"},
                headers={"Content-Type": "application/apply-patch+yaml"},
                data=json.dumps(crd),
            )
            break
        except KubeError as exc:
            # 403: RBAC without the CRD rule, or the CRD is missing (an apply would create it)
            if exc.status in (400, 403, 404, 422) or time.monotonic() > deadline:
                raise RuntimeError(
                    f"cannot apply CRD {CRD_NAME} ({exc}); it must exist (the chart's crds/) and the operator "
                    "needs get/patch on it, or set ASYA_OPERATOR_MANAGE_CRDS=false"
                ) from exc
            log.warning("applying CRD %s failed, retrying: %s", CRD_NAME, exc)
        except (OSError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot reach the API to apply CRD {CRD_NAME}: {exc}") from exc
            log.warning("applying CRD %s failed, retrying: %s", CRD_NAME, exc)
        await asyncio.sleep(retry_s)
    # a changed name or short name can conflict with another CRD: then the API would not serve it
    while True:
        _, served = await client.request("GET", CRD_PATH)
        if _condition(served, "Established").get("status") == "True":
            break
        names = _condition(served, "NamesAccepted")
        if names.get("status") == "False" or time.monotonic() > deadline:
            raise RuntimeError(f"CRD {CRD_NAME} is not established: {names.get('message') or served.get('status')}")
        await asyncio.sleep(min(retry_s, 0.5))
    log.info("applied CRD %s (%s)", CRD_NAME, _versions(crd))


def _versions(crd: dict[str, Any]) -> str:
    return ", ".join(str(v.get("name")) for v in crd.get("spec", {}).get("versions") or [])
