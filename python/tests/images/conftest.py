"""Image tests: ``ci/images.sh`` builds every image once per session, then each one starts.

The build runs in the collection hook, outside per-test timeouts (a cold machine spends
a few minutes: mmdebstrap, wheel downloads, five podman builds; a warm one checks
labels and returns). A build failure is kept and reported by every image test, so one
broken Dockerfile does not hide the results of the others' checks.

``ASYA_TEST_IMAGES="gateway"`` (names separated by spaces) builds only those images, for a
quick run of one image's tests (``-k gateway``) without rebuilding the others; CI leaves it
unset and builds all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import podrun

NAMES = ("runtime", "sidecar", "crew", "operator", "gateway", "example-text")
VERSION = tomllib.loads((podrun.ROOT / "python" / "pyproject.toml").read_text())["project"]["version"]
_BUILD: dict[str, str] = {}


def wanted() -> tuple[str, ...]:
    """The images this session builds: ``ASYA_TEST_IMAGES`` or every one."""
    names = tuple(os.environ.get("ASYA_TEST_IMAGES", "").split()) or NAMES
    unknown = set(names) - set(NAMES)
    if unknown:
        raise pytest.UsageError(f"ASYA_TEST_IMAGES names unknown images {sorted(unknown)}; known: {NAMES}")
    return names


def _build() -> None:
    cmd = [str(podrun.SCRIPT), "build", *wanted()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    _BUILD.update(output=res.stdout + res.stderr, ok="yes" if res.returncode == 0 else "")


def tag(name: str) -> str:
    return f"localhost/asya-{name}:{VERSION}"


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: `-m "not images"` never builds
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _BUILD or not any(item.get_closest_marker("images") for item in items):
        return
    _build()


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Tags of the built images by name; fails when ``ci/images.sh`` did."""
    if not _BUILD:  # collected without the marker hook (e.g. a single test by node id still passes through it)
        _build()
    if not _BUILD["ok"]:
        pytest.fail(f"ci/images.sh build failed:\n{_BUILD['output'][-6000:]}")
    return {name: tag(name) for name in wanted()}


@pytest.fixture
def pod_dir(tmp_path: Path) -> Path:
    """Volumes of one pod; world-traversable because the containers run as UID 10001."""
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o111)
    return tmp_path


@pytest.fixture
def started() -> Iterator[list[podrun.Pod | podrun.Container]]:
    """Pods and containers a test starts; removed afterwards."""
    things: list[podrun.Pod | podrun.Container] = []
    yield things
    for thing in things:
        thing.stop()
