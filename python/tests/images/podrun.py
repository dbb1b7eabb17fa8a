"""Run the containers of a rendered pod with podman, the way a kubelet would start them.

The image tests take the pod shape from the real renderers (the operator's
``workload.render_workload`` / ``render_runtime_configmap``, or a chart's values) and
turn each container into one ``podman run``: its image, command, env, volume mounts
(emptyDir -> a host directory shared by the containers of the pod, configMap -> a
host directory holding the ConfigMap's files) and security context (read-only root,
no capabilities, no privilege escalation, the image's non-root UID). Every container
shares the host network, so a test replaces the pod's fixed ports with free ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "ci" / "images.sh"
UID = 10001


def podman_env() -> dict[str, str]:
    """Environment for podman with the private containers.conf of ``ci/images.sh``."""
    out = subprocess.run([str(SCRIPT), "env"], check=True, capture_output=True, text=True, timeout=60).stdout
    key, _, value = out.strip().partition("=")
    return {**os.environ, key: value}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman --runtime runc ARGS`` with our containers.conf (crun refuses this machine's cgroups)."""
    res = subprocess.run(
        ["podman", "--runtime", "runc", *args], capture_output=True, text=True, timeout=timeout, env=_env()
    )
    if check and res.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


_ENV_CACHE: dict[str, str] = {}


def _env() -> dict[str, str]:
    if not _ENV_CACHE:
        _ENV_CACHE.update(podman_env())
    return _ENV_CACHE


def hardened_args() -> list[str]:
    """What a restricted pod's container gets: read-only root, no capabilities, no escalation, UID 10001."""
    return [
        "--read-only",
        "--read-only-tmpfs=false",  # only the volumes the pod declares are writable
        f"--user={UID}:{UID}",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--network=host",
    ]


class Container:
    """One started container; ``stop()`` removes it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def logs(self) -> str:
        res = podman("logs", self.name, check=False)
        return res.stdout + res.stderr

    def running(self) -> bool:
        res = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return res.stdout.strip() == "true"

    def exit_code(self) -> int | None:
        """The exit code once the container has stopped; None while it runs."""
        res = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", self.name, check=False)
        status, _, code = res.stdout.strip().partition(" ")
        return int(code) if status in ("exited", "stopped") else None

    def stop(self) -> None:
        podman("rm", "--force", "--time", "5", self.name, check=False)


def run(
    image: str, *args: str, command: list[str] | None = None, cmd_args: list[str] | None = None, name: str = ""
) -> Container:
    """``podman run -d`` with the hardened flags plus ``args`` (env, volumes).

    ``command`` replaces the entrypoint and ``cmd_args`` the image's CMD, as a container's
    ``command`` and ``args`` do in Kubernetes.
    """
    cname = name or f"asya-img-{uuid.uuid4().hex[:10]}"
    cmd = ["run", "--detach", f"--name={cname}", *hardened_args(), *args]
    if command is not None:
        cmd += [f"--entrypoint={json.dumps(command[:1])}", image, *command[1:]]
    else:
        cmd.append(image)
    cmd += cmd_args or []
    try:
        podman(*cmd)
    except RuntimeError:
        podman("rm", "--force", cname, check=False)  # created but never started: still holds the name and image
        raise
    return Container(cname)


class Pod:
    """The containers of one rendered pod, started with podman; volumes live under ``workdir``."""

    def __init__(self, pod_spec: Mapping[str, Any], workdir: Path, configmaps: Mapping[str, Mapping[str, str]]):
        self.spec = pod_spec
        self.workdir = workdir
        self.volumes = self._make_volumes(configmaps)
        self.containers: dict[str, Container] = {}

    def _make_volumes(self, configmaps: Mapping[str, Mapping[str, str]]) -> dict[str, Path]:
        out = {}
        for vol in self.spec.get("volumes") or []:
            path = self.workdir / vol["name"]
            path.mkdir(parents=True)
            if "emptyDir" in vol:
                path.chmod(0o1777)  # a kubelet's emptyDir is writable by the pod's (any) UID
            elif "configMap" in vol:
                for key, text in configmaps[vol["configMap"]["name"]].items():
                    (path / key).write_text(text)
                    (path / key).chmod(vol["configMap"].get("defaultMode", 0o644))
            else:
                raise ValueError(f"volume type of {vol['name']} not supported by this test harness")
            out[vol["name"]] = path
        return out

    def volume(self, name: str) -> Path:
        return self.volumes[name]

    def podman_args(self, container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
        """Env and mounts of ``container``; ``env`` replaces or adds variables (valueFrom resolved by the test)."""
        ctx = container.get("securityContext") or {}
        # the restricted context the renderers promise: the flags of hardened_args() enforce exactly this
        assert ctx.get("readOnlyRootFilesystem") is True, container["name"]
        assert ctx.get("allowPrivilegeEscalation") is False, container["name"]
        assert ctx.get("capabilities", {}).get("drop") == ["ALL"], container["name"]
        args = []
        values: dict[str, str] = {}
        for entry in container.get("env") or []:
            if "value" in entry:
                values[entry["name"]] = str(entry["value"])
        values.update(env)
        missing = [e["name"] for e in container.get("env") or [] if "value" not in e and e["name"] not in values]
        assert not missing, f"{container['name']}: env from secrets/fields the test must supply: {missing}"
        args += [f"--env={k}={v}" for k, v in values.items()]
        for mount in container.get("volumeMounts") or []:
            src = self.volumes[mount["name"]]
            if mount.get("subPath"):
                src = src / mount["subPath"]
                src.mkdir(exist_ok=True)
                src.chmod(0o1777)
            mode = "ro" if mount.get("readOnly") else "rw"
            args.append(f"--volume={src}:{mount['mountPath']}:{mode}")
        return args

    def start(self, name: str, image: str, env: Mapping[str, str] | None = None) -> Container:
        """Start container ``name`` (an init container too: the test runs it to its end first)."""
        every = [*(self.spec.get("initContainers") or []), *self.spec["containers"]]
        container = next(c for c in every if c["name"] == name)
        started = run(
            image,
            *self.podman_args(container, env or {}),
            command=container.get("command"),
            cmd_args=container.get("args"),
        )
        self.containers[name] = started
        return started

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{c.logs()}" for n, c in self.containers.items())

    def stop(self) -> None:
        for c in self.containers.values():
            c.stop()


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, diagnose: Callable[[], str] = str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s`` with ``diagnose()``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}\n{diagnose()}")


def http_status(url: str) -> int:
    """Status code of GET ``url`` (an HTTPError's code too)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def answers(url: str) -> bool:
    """Whether GET ``url`` answers 200 (a probe that passes)."""
    return http_status(url) == 200
