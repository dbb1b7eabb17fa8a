"""``asya send QUEUE FILE``: publish envelopes straight to an actor's RabbitMQ queue, losing none silently.

FILE is one JSON envelope, a JSON array of envelopes, or JSON lines (``-``
reads stdin). Everything is parsed and validated before the first publish;
then ``asya.client.publish`` sends with publisher confirms and mandatory
routing, so a misspelt queue is an error naming it, not a silent drop. On a
failure the command says how many envelopes the broker confirmed first, and
exits non-zero: 1 the broker refused or was unreachable, 2 bad input (nothing
sent). Broker: ``--url`` or ``ASYA_TRANSPORT_URL``; queue prefix:
``--queue-prefix`` or ``ASYA_TRANSPORT_OPT_QUEUE_PREFIX``, as the transport.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from asya import client
from asya.cli import output
from asya.contracts import EnvelopeError

EXIT_BROKER = 1
EXIT_INPUT = 2


class InputError(ValueError):
    """FILE is not one envelope, an array of them, or JSON lines; the message says where."""


def parse_envelopes(text: str) -> list[Any]:
    """The envelopes in ``text``: one JSON document (object or array) or JSON lines."""
    try:
        doc = json.loads(text)
    except ValueError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise InputError(f"not JSON: {whole}") from None
        items = []
        for n, line in lines:
            try:
                items.append(json.loads(line))
            except ValueError as exc:
                raise InputError(f"line {n} is not JSON: {exc}") from None
        return items
    return doc if isinstance(doc, list) else [doc]


def send(
    queue: str = typer.Argument(..., help="Actor name (prep) or queue name (asya-prep)."),
    file: str = typer.Argument(..., help="JSON envelope, JSON array of envelopes, or JSON lines; - for stdin."),
    url: str | None = typer.Option(None, "--url", help="Broker URL amqp://... (default: $ASYA_TRANSPORT_URL)."),
    queue_prefix: str | None = typer.Option(
        None, "--queue-prefix", help="Broker queue prefix (default: $ASYA_TRANSPORT_OPT_QUEUE_PREFIX or asya-)."
    ),
) -> None:
    """Publish envelopes to QUEUE on RabbitMQ with publisher confirms; a missing queue is an error."""
    # pika logs every failed connection attempt at ERROR; the one message below says it better
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        envelopes = parse_envelopes(text)
        if not envelopes:
            raise InputError("no envelopes in it")
    except OSError as exc:
        output.job_error(f"cannot read {file}: {exc.strerror}")
        raise typer.Exit(EXIT_INPUT) from None
    except InputError as exc:
        output.job_error(f"{file}: {exc}; nothing was sent")
        raise typer.Exit(EXIT_INPUT) from None
    try:
        target = client.broker_queue(queue, queue_prefix)
    except EnvelopeError as exc:
        output.job_error(f"{exc}; nothing was sent")
        raise typer.Exit(EXIT_INPUT) from None
    try:
        confirmed = client.publish(queue, envelopes, url=url, queue_prefix=queue_prefix)
    except EnvelopeError as exc:
        output.job_error(f"{file}: envelope {exc}; nothing was sent")
        raise typer.Exit(EXIT_INPUT) from None
    except client.PublishError as exc:
        output.job_error(str(exc))
        output.err_console.print(
            f"{exc.confirmed} of {len(envelopes)} envelope(s) confirmed by the broker before the error"
        )
        raise typer.Exit(EXIT_BROKER) from None
    typer.echo(f"sent {confirmed} envelope(s) to {target} (confirmed by the broker)")
