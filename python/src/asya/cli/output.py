"""All terminal rendering of the CLI (rich), kept in one place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from asya.cli.tracker import Progress

console = Console(stderr=False, highlight=False)


def progress_table(title: str, route: tuple[str, ...], progress: Progress, elapsed_s: float) -> Table:
    table = Table(title=f"{title} — {elapsed_s:5.1f}s", title_justify="left")
    table.add_column("actor")
    for col in ("success", "ended_early", "error", "requeued"):
        table.add_column(col, justify="right")
    for actor in route:
        c = progress.by_actor.get(actor) or Counter()
        table.add_row(actor, *(str(c.get(k, 0)) for k in ("success", "ended_early", "error", "requeued")))
    table.caption = (
        f"inputs {progress.inputs} · open {progress.open} · results {progress.succeeded} · "
        f"dead letters {progress.failed} · retries {progress.retrying}"
    )
    return table


def summary(out_dir: Path, progress: Progress, elapsed_s: float, complete: bool) -> None:
    state = "[green]complete[/]" if complete else "[red]incomplete (timed out)[/]"
    console.print(
        f"\nPipeline {state} in {elapsed_s:.1f}s: {progress.succeeded} result(s), {progress.failed} dead letter(s)."
    )
    console.print(f"Results:      {out_dir / 'results'}")
    console.print(f"Dead letters: {out_dir / 'results' / 'errors'}")
    console.print(f"Logs:         {out_dir / 'logs'}")
    for failure in progress.failures[:5]:
        error = failure.get("error")
        reason = error.get("message", error) if isinstance(error, dict) else error or failure.get("reason") or ""
        console.print(f"  [red]dead letter[/] {failure.get('id')}: {reason}")


def error(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
