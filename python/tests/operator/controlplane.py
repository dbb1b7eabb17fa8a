"""A real Kubernetes control plane for tests: etcd + kube-apiserver (+ controller-manager).

envtest-style: no kubelet, no scheduler, so Pods stay Pending, but Deployments get
ReplicaSets and Pods, ownerReference garbage collection and namespace deletion are real
(kube-controller-manager). Binaries come from ``ci/build-kube.sh`` (cached in
``~/.cache/asya-tools``; built from the Go module proxy when missing). Everything runs on
free loopback ports in a temp dir; the admin uses a static token (``system:masters``),
anyone else a real ServiceAccount token from the TokenRequest API. An audit log of every
write is kept so tests and the benchmark can count API writes per user; the users named in
``audited_users`` (the operator's ServiceAccount in the tests) have every request logged,
reads and watches too, so the RBAC test can derive what the operator really calls.

Used by ``conftest.py`` (session fixture) and ``bench/operator_bench.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
ADMIN_TOKEN = "asya-admin-token"  # a throwaway test credential
KUBE_CONTROLLERS = (
    "deployment-controller,replicaset-controller,statefulset-controller,"
    "garbage-collector-controller,namespace-controller,"
    "job-controller"  # the chart install tests complete the gateway's migration hook Job
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool_dir(build: bool = True, timeout_s: float = 3600) -> Path:
    """Directory holding the built binaries; builds them (slow, once) when missing."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asya-tools"
    k8s = sorted(cache.glob("k8s-v*/kube-apiserver"))
    if not k8s and build:
        subprocess.run([str(ROOT / "ci/build-kube.sh"), "all"], check=True, timeout=timeout_s)
        k8s = sorted(cache.glob("k8s-v*/kube-apiserver"))
    if not k8s:
        raise FileNotFoundError(f"no kube-apiserver under {cache}; run ci/build-kube.sh")
    return k8s[-1].parent


def etcd_binary() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asya-tools"
    built = sorted(cache.glob("etcd-v*/etcd"))
    if built:
        return str(built[-1])
    if shutil.which("etcd"):  # Debian etcd-server 3.4: fallback only
        return str(shutil.which("etcd"))
    subprocess.run([str(ROOT / "ci/build-kube.sh"), "etcd"], check=True, timeout=900)
    return str(sorted(cache.glob("etcd-v*/etcd"))[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, apiserver serving cert (127.0.0.1/localhost), ServiceAccount signing keys."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
             "-out", "ca.crt", "-subj", "/CN=asya-test-ca", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=d)  # fmt: skip
    (d / "srv.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", "apiserver.crt", "-extfile", "srv.ext", cwd=d)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    (d / "tokens.csv").write_text(f'{ADMIN_TOKEN},test-admin,uid-admin,"system:masters"\n')


WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def audit_policy(audited_users: Iterable[str] = ()) -> dict[str, Any]:
    """Writes of everyone at Metadata level; every request of ``audited_users``.

    The audited users keep ResponseStarted: a watch only completes when it is closed, so
    without that stage a watch still open when the log is read would be missing.
    """
    users = list(audited_users)
    rules: list[dict[str, Any]] = [
        {"level": "None", "users": ["system:apiserver", "system:kube-controller-manager"]},
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
    ]
    if users:
        rules.append({"level": "Metadata", "users": users})
    rules += [
        {"level": "Metadata", "verbs": list(WRITE_VERBS), "omitStages": ["ResponseStarted"]},
        {"level": "None"},
    ]
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": rules}


class ControlPlane:
    """Start/stop etcd + kube-apiserver (+ kube-controller-manager) in a temp dir."""

    def __init__(
        self, workdir: Path | None = None, controller_manager: bool = True, audited_users: Iterable[str] = ()
    ) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="asya-kube-"))
        self.with_cm = controller_manager
        self.audited_users = tuple(audited_users)
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.port = 0
        self.timings: dict[str, float] = {}
        self.bin = Path()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def _wait(self, name: str, check: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        proc = dict(self.procs).get(name)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout_s}s; see {self.dir / (name + '.log')}")

    def start(self) -> ControlPlane:
        t0 = time.monotonic()
        self.bin = tool_dir()
        self.timings["binaries_s"] = time.monotonic() - t0
        make_pki(self.dir)
        (self.dir / "audit-policy.yaml").write_text(yaml.safe_dump(audit_policy(self.audited_users)))
        t1 = time.monotonic()
        ep, pp = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{ep}"
        self._spawn("etcd", [
            etcd_binary(), "--name", "t", "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{pp}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
            "--initial-cluster", f"t=http://127.0.0.1:{pp}", "--unsafe-no-fsync", "--logger=zap",
            "--max-request-bytes=10485760", "--quota-backend-bytes=4294967296",
        ])  # fmt: skip
        self._wait("etcd", lambda: b"true" in urllib.request.urlopen(f"{etcd_url}/health", timeout=1).read(), 30)
        self.timings["etcd_s"] = time.monotonic() - t1
        t2 = time.monotonic()
        self.port = free_port()
        d = self.dir
        self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={d}/apiserver.crt", f"--tls-private-key-file={d}/apiserver.key",
            f"--client-ca-file={d}/ca.crt", f"--token-auth-file={d}/tokens.csv", "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount", f"--service-account-issuer={self.server}",
            f"--service-account-key-file={d}/sa.pub", f"--service-account-signing-key-file={d}/sa.key",
            "--endpoint-reconciler-type=none", f"--audit-policy-file={d}/audit-policy.yaml",
            f"--audit-log-path={d}/audit.log", "--audit-log-format=json", "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s", "--max-mutating-requests-inflight=1000",
            "--max-requests-inflight=2000",
        ])  # fmt: skip
        self._write_kubeconfig(self.admin_kubeconfig, ADMIN_TOKEN)
        self._wait("kube-apiserver", lambda: self._get("/readyz") == b"ok", 120)
        self.timings["apiserver_s"] = time.monotonic() - t2
        if self.with_cm and (self.bin / "kube-controller-manager").exists():
            t3 = time.monotonic()
            self._spawn("kube-controller-manager", [
                str(self.bin / "kube-controller-manager"), f"--kubeconfig={self.admin_kubeconfig}",
                "--leader-elect=false", "--use-service-account-credentials=false", f"--controllers={KUBE_CONTROLLERS}",
                "--secure-port=0", f"--root-ca-file={d}/ca.crt", "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20", "--concurrent-gc-syncs=40", "--kube-api-qps=200",
                "--kube-api-burst=400",
            ])  # fmt: skip
            self.timings["controller_manager_spawn_s"] = time.monotonic() - t3
        self.timings["total_s"] = time.monotonic() - t0
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop every process; remove the temp dir unless ``remove`` is False or ASYA_KEEP_KUBE_DIR is set."""
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        if remove and not os.environ.get("ASYA_KEEP_KUBE_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- client helpers -------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def _get(self, path: str, token: str = ADMIN_TOKEN) -> bytes:
        req = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=self._ssl(), timeout=5) as resp:
            return bytes(resp.read())

    def _write_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "t", "cluster": {"server": self.server, "certificate-authority": str(self.ca)}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u", "namespace": namespace}}],
            "current-context": "t",
        }
        path.write_text(yaml.safe_dump(cfg))
        return path

    def kubectl(self, *args: str, kubeconfig: Path | None = None, check: bool = True) -> str:
        """Run the built kubectl; returns stdout."""
        cmd = [str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr}")
        return res.stdout

    def install_asya(self) -> None:
        """The AsyncActor CRD, KEDA's CRDs (ci/keda-crds.sh) and the operator's RBAC: what the chart installs."""
        self.apply_crds([ROOT / "crds/asyncactor.yaml", *keda_crd_files()])
        self.kubectl("apply", "--server-side", "-f", str(ROOT / "crds/rbac/operator.yaml"))

    def apply_crds(self, files: Iterable[Path]) -> None:
        """Server-side apply CRDs and wait until they are served."""
        names = []
        for f in files:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
            for doc in yaml.safe_load_all(f.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(doc["metadata"]["name"])
        for name in names:
            self.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")

    def service_account_kubeconfig(self, namespace: str, name: str, cluster_role: str) -> Path:
        """A kubeconfig for a real ServiceAccount bound (cluster-wide) to ``cluster_role``."""
        self.kubectl("create", "namespace", namespace, check=False)
        self.kubectl("create", "serviceaccount", name, "-n", namespace, check=False)
        self.kubectl(
            "create", "clusterrolebinding", f"{namespace}-{name}", f"--clusterrole={cluster_role}",
            f"--serviceaccount={namespace}:{name}", check=False,
        )  # fmt: skip
        token = self.kubectl("create", "token", name, "-n", namespace, "--duration=24h").strip()
        return self._write_kubeconfig(self.dir / f"{namespace}-{name}.kubeconfig", token, namespace)

    def audit_events(self) -> list[dict[str, Any]]:
        """Every audit event logged so far, oldest first (batched: up to ~1 s late).

        Includes the log files the apiserver rotated away (it rotates at 100 MB).
        """
        files = [*sorted(self.dir.glob("audit-*.log")), self.audit_log]  # backups carry a timestamp
        out = []
        for path in files:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line being written right now
                    continue
        return out

    def audit_writes(self) -> list[dict[str, Any]]:
        """Every completed write the audit log recorded so far."""
        return [
            ev for ev in self.audit_events() if ev.get("stage") == "ResponseComplete" and ev.get("verb") in WRITE_VERBS
        ]


KEDA_CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")


def keda_crd_files() -> list[Path]:
    """KEDA's CRDs, fetched from the KEDA Go module into .tools/ by ci/keda-crds.sh (cached)."""
    out = subprocess.run([str(ROOT / "ci/keda-crds.sh")], capture_output=True, text=True, check=True, timeout=600)
    folder = Path(out.stdout.strip().splitlines()[-1])
    return [folder / f for f in KEDA_CRDS]


def _serve() -> None:
    """``ci/kube.sh``: start a control plane with the CRDs, print how to reach it, run until Ctrl-C."""
    import signal

    cp = ControlPlane()
    try:
        cp.start()
        cp.install_asya()
        print(f"export KUBECONFIG={cp.admin_kubeconfig}", flush=True)
        print(f"# kubectl: {cp.bin / 'kubectl'}   logs: {cp.dir}   (Ctrl-C stops)", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cp.stop()


if __name__ == "__main__":
    _serve()
