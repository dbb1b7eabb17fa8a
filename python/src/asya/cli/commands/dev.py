"""``asya dev ...``: run pipelines on this machine without a cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.live import Live

from asya.cli import devrun, output, pipeline
from asya.cli.tracker import Progress

app = typer.Typer(help="Run actors locally, without Kubernetes.", no_args_is_help=True)


@app.command("run")
def run(
    pipeline_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Pipeline YAML file."),
    transport: str = typer.Option("local", help="local (no server), rabbitmq or sqs."),
    url: str = typer.Option("", help="Broker URL (amqp://... for rabbitmq); local defaults to OUT/queues."),
    out: Path = typer.Option(Path(".asya-demo"), help="Folder for results, dead letters, queues and logs."),
    timeout: float = typer.Option(600.0, help="Give up after this many seconds."),
) -> None:
    """Start every actor of PIPELINE_FILE as sidecar + runtime processes, feed its inputs, show progress."""
    try:
        spec = pipeline.load(pipeline_file)
    except pipeline.PipelineError as exc:
        output.error(str(exc))
        raise typer.Exit(2) from None
    opts = devrun.RunOptions(transport=transport, url=url, out_dir=out, timeout_s=timeout)
    output.console.print(
        f"Running [bold]{spec.name}[/]: {len(spec.inputs)} input(s) through {' → '.join(spec.route)} on {transport}"
    )
    with Live(console=output.console, refresh_per_second=8, transient=False) as live:

        def render(progress: Progress, elapsed: float) -> None:
            live.update(output.progress_table(spec.name, spec.route, progress, elapsed))

        result = asyncio.run(devrun.run(spec, opts, render))
        render(result.progress, result.elapsed_s)
    output.summary(out.resolve(), result)
    if not result.complete:
        raise typer.Exit(1)
