"""``asya send QUEUE FILE`` on a real RabbitMQ: confirmed counts, and a misspelt queue is an error, not a silent drop."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fixtures.rabbitmq import RabbitMQServer
from fixtures.rabbitmq_queues import bounded_queue, drain, ensure, envelope
from support.procs import base_env
from typer.testing import CliRunner

from asya.cli import app

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(60)]


def actor() -> str:
    return f"send-{uuid.uuid4().hex[:8]}"


def test_json_lines_from_stdin_arrive_and_the_count_is_confirmed(rabbitmq_server: RabbitMQServer) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    lines = "\n".join(json.dumps(envelope(i, (name,))) for i in range(3)) + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "asya.cli", "send", name, "-"],
        input=lines,
        capture_output=True,
        text=True,
        env=base_env(ASYA_TRANSPORT_URL=rabbitmq_server.url),
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sent 3 envelope(s) to asya-{name} (confirmed by the broker)"
    assert drain(rabbitmq_server.url, name, 3) == [envelope(i, (name,)) for i in range(3)]


def test_one_envelope_or_an_array_in_a_file(rabbitmq_server: RabbitMQServer, tmp_path: Path) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    one, many = tmp_path / "one.json", tmp_path / "many.json"
    one.write_text(json.dumps(envelope(0)))
    many.write_text(json.dumps([envelope(1), envelope(2)]))
    cli = CliRunner()
    assert "sent 1 envelope(s)" in cli.invoke(app, ["send", name, str(one), "--url", rabbitmq_server.url]).stdout
    assert "sent 2 envelope(s)" in cli.invoke(app, ["send", name, str(many), "--url", rabbitmq_server.url]).stdout
    assert drain(rabbitmq_server.url, name, 3) == [envelope(0), envelope(1), envelope(2)]


def test_a_misspelt_queue_exits_non_zero_naming_it(rabbitmq_server: RabbitMQServer, tmp_path: Path) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    file = tmp_path / "envs.json"
    file.write_text(json.dumps([envelope(1), envelope(2)]))
    result = CliRunner().invoke(app, ["send", name[:-1], str(file), "--url", rabbitmq_server.url])
    assert result.exit_code == 1
    assert f"no queue 'asya-{name[:-1]}'" in result.stderr
    assert "0 of 2 envelope(s) confirmed by the broker before the error" in result.stderr
    assert drain(rabbitmq_server.url, name, 0) == []


def test_a_refusal_mid_file_says_how_many_were_confirmed(rabbitmq_server: RabbitMQServer, tmp_path: Path) -> None:
    name = actor()
    bounded_queue(rabbitmq_server.url, f"asya-{name}", max_length=1)
    file = tmp_path / "envs.json"
    file.write_text(json.dumps([envelope(i) for i in range(3)]))
    result = CliRunner().invoke(app, ["send", name, str(file), "--url", rabbitmq_server.url])
    assert result.exit_code == 1
    assert "1 of 3 envelope(s) confirmed by the broker before the error" in result.stderr


def test_bad_input_sends_nothing_and_says_where(rabbitmq_server: RabbitMQServer, tmp_path: Path) -> None:
    name = actor()
    ensure(rabbitmq_server.url, name)
    cli = CliRunner()
    lines = tmp_path / "lines.jsonl"
    lines.write_text(json.dumps(envelope(0)) + "\n{broken\n")
    result = cli.invoke(app, ["send", name, str(lines), "--url", rabbitmq_server.url])
    assert result.exit_code == 2 and "line 2 is not JSON" in result.stderr and "nothing was sent" in result.stderr
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps([envelope(0), {"id": "x", "payload": 1}]))
    result = cli.invoke(app, ["send", name, str(invalid), "--url", rabbitmq_server.url])
    assert result.exit_code == 2 and "[1].route" in result.stderr and "nothing was sent" in result.stderr
    result = cli.invoke(app, ["send", "Not-An-Actor", str(invalid), "--url", rabbitmq_server.url])
    assert result.exit_code == 2 and result.stderr.startswith("error: queue: 'Not-An-Actor' is not a valid actor name")
    result = cli.invoke(app, ["send", name, str(tmp_path / "absent.json"), "--url", rabbitmq_server.url])
    assert result.exit_code == 2 and "cannot read" in result.stderr
    assert drain(rabbitmq_server.url, name, 0) == []
