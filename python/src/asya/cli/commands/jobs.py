"""``asya jobs submit|get|list|watch|cancel``: jobs on a gateway, through ``asya.client``.

Where the gateway is: ``--url`` or ``ASYA_GATEWAY_URL``; the client token:
``--token`` or ``ASYA_CLIENT_TOKEN`` (prefer the variable: options show up in
``ps``). Progress and messages go to stderr, results and job JSON to stdout.

Exit codes: 0 done (a watched job succeeded), 1 the job failed, 3 it was
cancelled, 4 the gateway refused the request or could not be reached, 2 a bad
command line (typer's own, and unreadable ``--payload``/``--params``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from asya import client
from asya.cli import output

app = typer.Typer(help="Jobs on a gateway: submit, get, list, watch, cancel.", no_args_is_help=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_GATEWAY = 4

UrlOpt = typer.Option(None, "--url", help="Gateway base URL (default: $ASYA_GATEWAY_URL).")
TokenOpt = typer.Option(None, "--token", help="Client bearer token (default: $ASYA_CLIENT_TOKEN).")
JsonOpt = typer.Option(False, "--json", help="Print the gateway's JSON.")


def _connect(url: str | None, token: str | None) -> client.Client:
    try:
        return client.Client(url, token)
    except client.ClientError as exc:
        output.job_error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _fail(exc: client.ClientError) -> typer.Exit:
    message = exc.message if isinstance(exc, client.GatewayError) else str(exc)
    if isinstance(exc, client.InvalidRequestError) and exc.field:
        message = f"{exc.field}: {message}"
    if isinstance(exc, client.GatewayError):
        message = f"gateway answered {exc.status}: {message}"
    output.job_error(message)
    return typer.Exit(EXIT_GATEWAY)


def _json_arg(value: str, option: str) -> Any:
    """A JSON document given inline, as ``@file``, or ``@-`` for stdin."""
    try:
        if value.startswith("@"):
            name = value[1:]
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        else:
            text = value
        return json.loads(text)
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {value[1:]}: {exc.strerror}", param_hint=option) from None
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(job, indent=2, ensure_ascii=False))
    else:
        typer.echo(output.job_line(job))


def watch_job(c: client.Client, job_id: str) -> int:
    """Follow ``job_id`` to its end with a live bar; the exit code its outcome means."""
    final: dict[str, Any] | None = None
    with output.JobWatch(job_id) as bar:
        for event in c.watch(job_id):
            bar.event(event.kind, event.data)
            if event.final:
                final = event.data
    assert final is not None  # watch() returns only after the final event
    output.job_outcome(final)
    return {"succeeded": 0, "cancelled": EXIT_CANCELLED}.get(str(final.get("status")), EXIT_FAILED)


@app.command("submit")
def submit_cmd(
    route: str | None = typer.Option(None, "--route", help="Actors, comma-separated: prep,infer,post."),
    payload: str | None = typer.Option(None, "--payload", help="With --route: JSON, @file or @- (stdin)."),
    tool: str | None = typer.Option(None, "--tool", help="A tool the gateway is configured with."),
    params: str | None = typer.Option(None, "--params", help="With --tool: JSON object, @file or @-."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key", help="Same key and body: same job."),
    timeout_s: float | None = typer.Option(None, "--timeout", help="Seconds the whole job may take (a deadline)."),
    watch: bool = typer.Option(False, "--watch", help="Follow the job to its end (exit code: its outcome)."),
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a job from a route and a payload, or from a tool and its parameters."""
    if (route is None) == (tool is None):
        raise typer.BadParameter("give --route (with --payload) or --tool (with --params), not both")
    if tool is not None and payload is not None:
        raise typer.BadParameter("--payload goes with --route; a tool takes --params", param_hint="--payload")
    if route is not None and params is not None:
        raise typer.BadParameter("--params goes with --tool; a route takes --payload", param_hint="--params")
    actors = [a.strip() for a in route.split(",")] if route is not None else None
    body = _json_arg(payload, "--payload") if payload is not None else None
    arguments = _json_arg(params, "--params") if params is not None else {}
    if tool is not None and not isinstance(arguments, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--params")
    with _connect(url, token) as c:
        try:
            job = c.submit(
                actors, body, tool=tool, params=arguments, idempotency_key=idempotency_key, timeout_s=timeout_s
            )
            _print_job(job, as_json)
            if watch:
                raise typer.Exit(watch_job(c, str(job["id"])))
        except client.ClientError as exc:
            raise _fail(exc) from None


@app.command("get")
def get_cmd(
    job_id: str = typer.Argument(..., help="Job id."), url: str | None = UrlOpt, token: str | None = TokenOpt
) -> None:
    """Print one job (status, route, progress, result or error, input payload) as JSON."""
    with _connect(url, token) as c:
        try:
            _print_job(c.get(job_id), as_json=True)
        except client.ClientError as exc:
            raise _fail(exc) from None


@app.command("list")
def list_cmd(
    status: str | None = typer.Option(None, help="Only jobs with this status (queued, running, succeeded, ...)."),
    tool: str | None = typer.Option(None, help="Only jobs created by this tool."),
    limit: int = typer.Option(50, help="At most this many (newest first)."),
    url: str | None = UrlOpt,
    token: str | None = TokenOpt,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List jobs, newest first."""
    shown = 0
    with _connect(url, token) as c:
        try:
            for job in c.iter_jobs(status=status, tool=tool, page_size=min(max(limit, 1), 200)):
                if shown >= limit:
                    break
                typer.echo(json.dumps(job, ensure_ascii=False) if as_json else output.job_line(job))
                shown += 1
        except client.ClientError as exc:
            raise _fail(exc) from None
    if not as_json:
        output.err_console.print(f"{shown} job(s)")


@app.command("watch")
def watch_cmd(
    job_id: str = typer.Argument(..., help="Job id."), url: str | None = UrlOpt, token: str | None = TokenOpt
) -> None:
    """Follow a job's stream with a live progress bar; ends with its result (stdout) or error (stderr)."""
    with _connect(url, token) as c:
        try:
            code = watch_job(c, job_id)
        except client.ClientError as exc:
            raise _fail(exc) from None
    raise typer.Exit(code)


@app.command("cancel")
def cancel_cmd(
    job_id: str = typer.Argument(..., help="Job id."), url: str | None = UrlOpt, token: str | None = TokenOpt
) -> None:
    """Cancel a job (a finished job keeps its status); prints the job afterwards."""
    with _connect(url, token) as c:
        try:
            job = c.cancel(job_id)
        except client.ClientError as exc:
            raise _fail(exc) from None
    typer.echo(output.job_line(job))
    if job.get("status") != "cancelled":
        output.err_console.print(f"job had already ended ({job.get('status')}); nothing to cancel")
