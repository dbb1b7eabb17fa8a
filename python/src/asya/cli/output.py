"""All terminal rendering of the CLI (rich), kept in one place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from asya.cli.devrun import RunResult
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
    caption = (
        f"inputs {progress.inputs} · open {progress.open} · results {progress.succeeded} · "
        f"dead letters {progress.failed} · retries {progress.retrying}"
    )
    if progress.processed_twice:
        caption += f" · processed twice {progress.processed_twice}"
    if progress.foreign:
        caption += f" · foreign {progress.foreign}"
    table.caption = caption
    return table


def summary(out_dir: Path, result: RunResult) -> None:
    s = result.summary
    if result.complete:
        state = "[green]complete[/]"
    elif s.still_queued:
        state = f"[red]incomplete ({s.still_queued} envelope(s) still queued)[/]"
    else:
        state = "[red]incomplete (timed out)[/]"
    console.print(
        f"\nPipeline {state} in {result.elapsed_s:.1f}s: {s.inputs} input(s), {s.results} result(s), "
        f"{s.dead_letters} dead letter(s) in the folders."
    )
    if s.processed_twice:
        console.print(f"  {s.processed_twice} envelope(s) were processed more than once (redelivered after a crash).")
    if s.dlq_only:
        console.print(f"  {s.dlq_only} envelope(s) went straight to asya-dlq (delivery limit); see `asya dlq`.")
    if s.result_files > s.results or s.dead_letter_files > s.dead_letters:
        console.print(
            f"  {s.result_files} result file(s) and {s.dead_letter_files} dead-letter file(s): "
            "some ids were stored under two days or two actors."
        )
    if s.foreign_files or s.foreign_reports:
        console.print(
            f"  [yellow]foreign[/]: {s.foreign_reports} id(s) reported and {s.foreign_files} file(s) stored "
            "that this run never produced (published into its queues by someone else)."
        )
    if s.unaccounted:
        shown = ", ".join(s.unaccounted[:5])
        console.print(f"  [red]{len(s.unaccounted)} input(s) with no result or dead letter[/]: {shown}")
    if s.temp_files_removed:
        console.print(f"  removed {s.temp_files_removed} temp file(s) left by a killed writer.")
    console.print(f"Results:      {out_dir / 'results'}")
    console.print(f"Dead letters: {out_dir / 'results' / 'errors'}")
    console.print(f"Logs:         {out_dir / 'logs'}")
    for failure in result.progress.failures[:5]:
        error = failure.get("error")
        reason = error.get("message", error) if isinstance(error, dict) else error or failure.get("reason") or ""
        console.print(f"  [red]dead letter[/] {failure.get('id')}: {reason}")


def error(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
