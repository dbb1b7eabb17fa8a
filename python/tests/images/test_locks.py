"""The lock files pin every dependency of the image's extras, and the builds enforce their hashes."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import podrun
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

IMAGES = podrun.ROOT / "images"
PYPROJECT = tomllib.loads((podrun.ROOT / "python" / "pyproject.toml").read_text())["project"]
# image -> extras its processes import; the same table as ci/images.sh's extras_of
EXTRAS = {
    "runtime": [],
    "sidecar": ["sidecar", "sqs", "s3"],
    "crew": ["sidecar", "sqs", "s3"],
    "operator": ["operator"],
    "gateway": ["gateway", "sqs"],
}
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$", re.M)
BASE = "localhost/asya-base:bookworm"


def pins(lock: Path) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in _PIN.findall(lock.read_text())}


def direct_requirements(extras: list[str]) -> list[Requirement]:
    """asya's requirements for ``extras``, self-references (``asya[sidecar]``) expanded, markers for Linux."""
    env = {k: str(v) for k, v in default_environment().items()} | {"sys_platform": "linux", "platform_system": "Linux"}
    todo, seen, out = list(extras), set(), [Requirement(r) for r in PYPROJECT["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in PYPROJECT["optional-dependencies"][extra]:
            req = Requirement(raw)
            if req.name == "asya":
                todo.extend(req.extras)
            elif req.marker is None or req.marker.evaluate(env):
                out.append(req)
    return out


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_lock_pins_every_requirement_of_the_image_extras(name: str) -> None:
    locked = pins(IMAGES / name / "requirements.lock")
    for req in direct_requirements(EXTRAS[name]):
        key = canonicalize_name(req.name)
        assert key in locked, f"images/{name}/requirements.lock lacks {req.name}: run ci/images.sh lock"
        assert req.specifier.contains(locked[key], prereleases=True), (
            f"images/{name}/requirements.lock pins {req.name}=={locked[key]}, pyproject wants {req}: run ci/images.sh lock"
        )


@pytest.mark.parametrize("lock", [*sorted(IMAGES.glob("*/requirements.lock")), IMAGES / "build.lock"], ids=str)
def test_every_pin_carries_a_hash(lock: Path) -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2])  # after the two header lines
    assert blocks and pins(lock)
    for block in blocks:
        assert "--hash=sha256:" in block, f"{lock.name}: no hash for {block.splitlines()[0]}"


def build_stage(context: Path) -> subprocess.CompletedProcess[str]:
    """``podman build --target build`` of the runtime Dockerfile (the smallest lock) on ``context``."""
    return podrun.podman(
        "build", "--pull=never", "--network=none", "--force-rm", "--target=build", f"--build-arg=BASE_IMAGE={BASE}",
        "-f", str(IMAGES / "runtime" / "Dockerfile"), str(context),
        check=False, timeout=600,
    )  # fmt: skip


@pytest.mark.images
@pytest.mark.parametrize("tamper", ["wrong-hash", "no-hashes"])
def test_build_refuses_wheels_that_do_not_match_the_lock(images: dict[str, str], tmp_path: Path, tamper: str) -> None:
    del images  # built: the base image and the wheel cache exist
    subprocess.run([str(podrun.SCRIPT), "context", "runtime", str(tmp_path)], check=True, timeout=600)
    lock = tmp_path / "requirements.lock"
    text = lock.read_text()
    if tamper == "wrong-hash":  # the wheel in the context is the real one; the lock now expects another
        text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, text)
    else:
        text = re.sub(r" \\\n\s+--hash=sha256:[0-9a-f]{64}", "", text)
    assert text != lock.read_text()
    lock.write_text(text)
    res = build_stage(tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    expected = "DO NOT MATCH THE HASHES" if tamper == "wrong-hash" else "Hashes are required in --require-hashes mode"
    assert expected in out, out[-3000:]
