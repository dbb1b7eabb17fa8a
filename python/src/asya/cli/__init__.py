"""The ``asya`` command line: one typer app, one module per noun in ``commands/``."""

from __future__ import annotations

import typer

from asya.cli.commands import dev, dlq, jobs, send

app = typer.Typer(help="Asya: asynchronous multi-step AI pipelines.", no_args_is_help=True)
app.add_typer(dev.app, name="dev")
app.add_typer(dlq.app, name="dlq")
app.add_typer(jobs.app, name="jobs")
app.command("send")(send.send)

__all__ = ["app", "main"]


def main() -> None:
    app()
