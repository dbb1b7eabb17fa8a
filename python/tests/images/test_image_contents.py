"""What each built image is: its user, labels, entry point, and what its final stage leaves out."""

from __future__ import annotations

import json
import re
from typing import Any

import podrun
import pytest
from conftest import VERSION, wanted

pytestmark = [pytest.mark.images]

ENTRYPOINTS = {
    "operator": ["python", "-m", "asya.operator"],
    "sidecar": ["python", "-m", "asya.sidecar"],
    "crew": ["python", "-m", "asya.crew"],
    "gateway": ["python", "-m", "asya.gateway"],
    "runtime": ["python", "-m", "asya.runtime"],
    "example-text": ["python", "-m", "asya.runtime"],
}
OCI_LABELS = ("title", "description", "version", "source", "licenses", "revision")

# Run inside each image: any of these found means a tool the processes never need shipped.
_PROBE = """
import importlib.util, json, os, shutil
tools = ["sh", "bash", "dash", "apt", "apt-get", "dpkg", "pip", "pip3", "curl", "wget", "perl", "su", "mount"]
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "found": {t: shutil.which(t) for t in tools if shutil.which(t)},
    "modules": [m for m in ("pip", "ensurepip", "setuptools") if importlib.util.find_spec(m)],
    "dpkg_db": os.path.exists("/var/lib/dpkg/status"),
    "bin": sorted(os.listdir("/usr/bin")),
}))
"""


def inspect(tag: str) -> dict[str, Any]:
    return dict(json.loads(podrun.podman("image", "inspect", tag).stdout)[0])


@pytest.mark.parametrize("name", wanted())
def test_config_names_a_numeric_non_root_user_and_the_entrypoint(images: dict[str, str], name: str) -> None:
    cfg = inspect(images[name])["Config"]
    assert cfg["User"] == "10001:10001"  # numeric: runAsNonRoot can verify it without /etc/passwd
    assert cfg["Entrypoint"] == ENTRYPOINTS[name]
    assert "/opt/venv/bin" in next(e for e in cfg["Env"] if e.startswith("PATH="))


@pytest.mark.parametrize("name", wanted())
def test_oci_labels_describe_the_image(images: dict[str, str], name: str) -> None:
    labels = inspect(images[name])["Config"]["Labels"]
    for key in OCI_LABELS:
        assert labels.get(f"org.opencontainers.image.{key}"), f"{name}: no org.opencontainers.image.{key}"
    assert labels["org.opencontainers.image.title"] == f"asya-{name}"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])


@pytest.mark.parametrize("name", wanted())
def test_final_stage_has_no_shell_package_manager_or_pip(images: dict[str, str], name: str) -> None:
    res = podrun.podman("run", "--rm", *podrun.hardened_args(), "--entrypoint=python", images[name], "-c", _PROBE)
    seen = json.loads(res.stdout)
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    assert seen["found"] == {}, f"{name} ships {seen['found']}"
    assert seen["modules"] == [], f"{name} can import {seen['modules']}"
    assert not seen["dpkg_db"]
    assert all(b.startswith("python") for b in seen["bin"]), seen["bin"]


def test_no_shell_means_no_shell(images: dict[str, str]) -> None:
    """The probe above looks at PATH; here the kernel is asked to run /bin/sh itself."""
    res = podrun.podman(
        "run", "--rm", *podrun.hardened_args(), "--entrypoint=/bin/sh", images["sidecar"], "-c", "true", check=False
    )
    assert res.returncode != 0
    assert "/bin/sh" in res.stderr
