"""``asya dlq list|show|replay``: inspect dead letters and send them back.

Thin on purpose: options are parsed here and everything else happens in
``asya.crew.dlq``. Where dead letters live comes from ``--storage`` (or
``ASYA_STORAGE_URL``; S3 credentials from ``ASYA_S3_ENDPOINT_URL`` and
``AWS_*``); ``--out DIR`` is the shortcut for a folder written by
``asya dev run --out DIR`` (storage ``DIR/results``, local queues ``DIR/queues``).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path

import typer

from asya import storage, transports
from asya.crew import dlq
from asya.crew.settings import CrewSettings
from asya.engine.settings import transport_options

app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)

StorageOpt = typer.Option("", "--storage", help="file:///dir or s3://bucket/prefix (default: $ASYA_STORAGE_URL).")
OutOpt = typer.Option(None, "--out", help="Folder of an `asya dev run --out` (storage DIR/results, queues DIR/queues).")


def _store(storage_url: str, out: Path | None) -> storage.ObjectStore:
    settings = CrewSettings.from_env()
    url = (out.resolve() / "results").as_uri() if out else storage_url or settings.storage_url
    if not url:
        raise typer.BadParameter("give --storage, --out or set ASYA_STORAGE_URL")
    return storage.create_store(url, settings.s3)


@app.command("list")
def list_cmd(
    storage_url: str = StorageOpt,
    out: Path | None = OutOpt,
    actor: str | None = typer.Option(None, help="Only dead letters of this actor."),
    reason: str | None = typer.Option(None, help="Only this reason (budget_exhausted, non_retryable, ...)."),
    limit: int | None = typer.Option(None, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """List dead letters still waiting for attention."""

    async def go() -> list[dlq.DeadLetterInfo]:
        store = _store(storage_url, out)
        try:
            return await dlq.list_dead_letters(store, actor=actor, reason=reason, limit=limit)
        finally:
            await store.close()

    infos = asyncio.run(go())
    for info in infos:
        if as_json:
            typer.echo(json.dumps(info.__dict__))
        else:
            at = datetime.datetime.fromtimestamp(info.at, datetime.UTC).strftime("%H:%M:%S") if info.at else "?"
            typer.echo(f"{info.day} {at}  {info.actor:<20} {info.id:<36} {info.reason or '-':<17} {info.message or ''}")
    if not as_json:
        typer.echo(f"{len(infos)} dead letter(s)")


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="Envelope id or storage key (errors/...)."),
    storage_url: str = StorageOpt,
    out: Path | None = OutOpt,
) -> None:
    """Print one dead letter in full (error, traceback, original payload, headers)."""

    async def go() -> dict[str, object]:
        store = _store(storage_url, out)
        try:
            return await dlq.show(store, ref)
        finally:
            await store.close()

    try:
        typer.echo(json.dumps(asyncio.run(go()), indent=2, ensure_ascii=False))
    except dlq.DeadLetterNotFound:
        typer.echo(f"no dead letter {ref!r}", err=True)
        raise typer.Exit(1) from None


@app.command("replay")
def replay_cmd(
    refs: list[str] = typer.Argument(None, help="Envelope ids or storage keys; none with --all."),
    replay_all: bool = typer.Option(False, "--all", help="Every dead letter (narrow with --actor)."),
    actor: str | None = typer.Option(None, help="With --all: only this actor's dead letters."),
    storage_url: str = StorageOpt,
    out: Path | None = OutOpt,
    transport: str = typer.Option("", help="local, rabbitmq or sqs (default: $ASYA_TRANSPORT)."),
    url: str = typer.Option("", help="Broker URL (default: $ASYA_TRANSPORT_URL)."),
) -> None:
    """Send dead letters back to the actor that failed them, with a fresh retry budget."""
    settings = CrewSettings.from_env()
    kind = transport or ("local" if out else settings.transport)
    broker = url or (str(out.resolve() / "queues") if out and kind == "local" else settings.transport_url)

    async def go() -> list[dlq.ReplayOutcome]:
        store = _store(storage_url, out)
        t = transports.create(
            transports.TransportSettings(kind=kind, url=broker, region=settings.s3.region, options=transport_options())
        )
        await t.connect()
        try:
            chosen = list(refs or [])
            if replay_all:
                chosen += [i.key for i in await dlq.list_dead_letters(store, actor=actor)]
            return await dlq.replay(store, t, chosen)
        finally:
            await t.close()
            await store.close()

    if not refs and not replay_all:
        raise typer.BadParameter("name dead letters to replay, or pass --all")
    failed = 0
    for outcome in asyncio.run(go()):
        if outcome.queue:
            typer.echo(f"replayed {outcome.id} -> {outcome.queue}")
        else:
            failed += 1
            typer.echo(f"cannot replay {outcome.id}: {outcome.problem}", err=True)
    if failed:
        raise typer.Exit(1)
