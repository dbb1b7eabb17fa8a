"""``asya jobs ...`` against a real gateway on real PostgreSQL: output, exit codes, errors a person can act on.

The end-to-end test runs the CLI as a real process and the job through real
sidecar + runtime processes and the crew (local transport); the others drive
the job with posted reports and call the typer app in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.gateway_threads import (
    CLIENT_TOKEN,
    REPORT_TOKEN,
    ThreadedGateway,
    gateway_db,
    progress_report,
    threaded_gateway,
)
from support.procs import Proc, base_env, start_runtime, start_sidecar
from typer.testing import CliRunner

from asya.cli import app

__all__ = ["gateway_db", "threaded_gateway"]  # fixtures, imported to be found here

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cli(threaded_gateway: ThreadedGateway, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ASYA_GATEWAY_URL", threaded_gateway.url)
    monkeypatch.setenv("ASYA_CLIENT_TOKEN", CLIENT_TOKEN)
    return CliRunner()


def submit(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, ["jobs", "submit", *args, "--json"])
    assert result.exit_code == 0, result.output
    job_id: str = json.loads(result.stdout)["id"]
    return job_id


@pytest.fixture
def pipeline(threaded_gateway: ThreadedGateway, tmp_path: Path) -> Iterator[None]:
    """Actors ``prep`` and ``infer`` (add one each), ``broken`` (raises), happy-end and error-end, all real."""
    logs = tmp_path / "logs"
    logs.mkdir()
    transport = {"ASYA_TRANSPORT": "local", "ASYA_TRANSPORT_URL": str(threaded_gateway.settings.transport.url)}
    report = {"ASYA_GATEWAY_URL": threaded_gateway.url, "ASYA_GATEWAY_TOKEN": REPORT_TOKEN}
    procs: list[Proc] = []
    try:
        for actor, handler in {"prep": "add_one", "infer": "add_one", "broken": "boom"}.items():
            sock = tmp_path / f"sock-{actor}"
            sock.mkdir()
            procs.append(start_runtime(f"support.handlers.{handler}", sock, logs, ASYA_ACTOR=actor))
            procs.append(start_sidecar(actor, sock, logs, transport, ASYA_PROCESSING_TIMEOUT_S=30, **report))
        crew = {
            **transport,
            **report,
            "ASYA_STORAGE_URL": (tmp_path / "store").as_uri(),
            "ASYA_RETRY_MAX_ATTEMPTS": "1",
        }
        for end in ("happy-end", "error-end"):
            procs.append(Proc([sys.executable, "-m", "asya.crew", end], base_env(**crew), logs / f"{end}.log"))
        yield
    finally:
        for proc in procs:
            proc.signal(15)
        for proc in procs:
            proc.stop()


def run_cli(gateway: ThreadedGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = base_env(ASYA_GATEWAY_URL=gateway.url, ASYA_CLIENT_TOKEN=CLIENT_TOKEN, COLUMNS=100)
    return subprocess.run(
        [sys.executable, "-m", "asya.cli", *args], capture_output=True, text=True, env=env, timeout=80, check=False
    )


@pytest.mark.slow
def test_submit_watch_follows_real_actors_to_the_result_and_exits_with_the_outcome(
    threaded_gateway: ThreadedGateway, pipeline: None, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"n": 1}')
    ok = run_cli(threaded_gateway, "jobs", "submit", "--route", "prep,infer", "--payload", f"@{payload}", "--watch")
    assert ok.returncode == 0, ok.stderr
    job_line, result = ok.stdout.split("\n", 1)
    assert " queued " in job_line and "prep → infer" in job_line
    assert json.loads(result) == {"n": 3, "trail": ["prep", "infer"]}
    # progress reports travel apart from the final one and may come too late to be streamed: not asserted
    for expected in ("created   queued : prep → infer", "step 2 of 2", "\nsucceeded\n"):
        assert expected in ok.stderr, ok.stderr

    bad = run_cli(threaded_gateway, "jobs", "submit", "--route", "broken", "--payload", '{"n": 1}', "--watch")
    assert bad.returncode == 1, bad.stderr
    assert "failed" in bad.stderr and "boom" in bad.stderr, bad.stderr


def test_get_list_and_cancel_print_what_the_gateway_holds(cli: CliRunner, threaded_gateway: ThreadedGateway) -> None:
    first = submit(cli, "--route", "prep,infer", "--payload", '{"n": 1}')
    second = submit(cli, "--route", "prep", "--payload", "null")
    got = cli.invoke(app, ["jobs", "get", first])
    assert got.exit_code == 0 and json.loads(got.stdout)["payload"] == {"n": 1}
    cancelled = cli.invoke(app, ["jobs", "cancel", second])
    assert cancelled.exit_code == 0 and second in cancelled.stdout and "cancelled" in cancelled.stdout
    listed = cli.invoke(app, ["jobs", "list", "--status", "queued"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [first]
    assert "1 job(s)" in listed.stderr
    everything = cli.invoke(app, ["jobs", "list", "--json"])
    assert [json.loads(line)["id"] for line in everything.stdout.splitlines()] == [second, first]


def test_watch_exits_non_zero_for_a_cancelled_or_failed_job(cli: CliRunner, threaded_gateway: ThreadedGateway) -> None:
    cancelled = submit(cli, "--route", "prep", "--payload", "1")
    threaded_gateway.progress(cancelled, "prep", 0, 2)
    assert cli.invoke(app, ["jobs", "cancel", cancelled]).exit_code == 0
    watched = cli.invoke(app, ["jobs", "watch", cancelled])
    assert watched.exit_code == 3, watched.output
    assert "step 1/2 prep success" in watched.stderr and "cancelled" in watched.stderr and watched.stdout == ""

    failed = submit(cli, "--route", "prep", "--payload", "1")
    error = {"error": "ValueError", "message": "no text in the payload", "type": "ValueError"}
    threaded_gateway.report(
        "final", failed, {"status": "failed", "actor": "error-end", "reason": "non_retryable", "error": error}
    )
    watched = cli.invoke(app, ["jobs", "watch", failed])
    assert watched.exit_code == 1, watched.output
    assert "failed (non_retryable): ValueError: no text in the payload" in watched.stderr


def test_gateway_refusals_are_clear_messages_and_exit_4(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_field = cli.invoke(app, ["jobs", "submit", "--route", "prep,Bad Actor", "--payload", "{}"])
    assert bad_field.exit_code == 4
    assert "gateway answered 422: route.actors[1]:" in bad_field.stderr and "'Bad Actor'" in bad_field.stderr
    missing = cli.invoke(app, ["jobs", "get", "nope"])
    assert missing.exit_code == 4 and "gateway answered 404: no job 'nope'" in missing.stderr
    monkeypatch.setenv("ASYA_CLIENT_TOKEN", "wrong")
    denied = cli.invoke(app, ["jobs", "list"])
    assert denied.exit_code == 4 and "gateway answered 401: a valid bearer token is required" in denied.stderr
    assert "wrong" not in denied.output


def test_bad_command_lines_exit_2_before_calling_the_gateway(cli: CliRunner, tmp_path: Path) -> None:
    not_json = cli.invoke(app, ["jobs", "submit", "--route", "prep", "--payload", "{nope"])
    assert not_json.exit_code == 2 and "not JSON" in not_json.output
    no_file = cli.invoke(app, ["jobs", "submit", "--route", "prep", "--payload", f"@{tmp_path / 'absent.json'}"])
    assert no_file.exit_code == 2 and "cannot read" in no_file.output
    both = cli.invoke(app, ["jobs", "submit", "--route", "prep", "--tool", "t"])
    assert both.exit_code == 2


def test_watch_follows_a_fan_out_parent_by_its_children(cli: CliRunner, threaded_gateway: ThreadedGateway) -> None:
    gw = threaded_gateway
    parent = submit(cli, "--route", "split,score", "--payload", "1")
    children = [f"{parent}.0", f"{parent}.1"]
    gw.report("progress", parent, {**progress_report(parent, "split", 0, 2), "outputs": children, "sent": 2})
    for child in children:
        gw.report(
            "final", child, {"status": "succeeded", "parent_id": parent, "actor": "score", "result": {"c": child}}
        )
    watched = cli.invoke(app, ["jobs", "watch", parent])
    assert watched.exit_code == 0, watched.output
    assert "children 2/2 ended (2 succeeded, 0 failed, 0 cancelled)" in watched.stderr
    assert json.loads(watched.stdout)["children"]["succeeded"] == 2
