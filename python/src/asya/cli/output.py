"""All terminal rendering of the CLI (rich), kept in one place."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
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


# --- asya jobs: progress goes to stderr, results to stdout (so `asya jobs watch ID > result.json` works) ---

err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay one grep-able line


def job_line(job: dict[str, Any]) -> str:
    """One job on one line, for ``asya jobs list`` and after a submit."""
    route = job.get("route") if isinstance(job.get("route"), dict) else {}
    assert isinstance(route, dict)
    what = job.get("tool") or " → ".join(str(a) for a in route.get("actors") or [])
    created = str(job.get("created_at") or "")[:19].replace("T", " ")
    return f"{job.get('id')}  {job.get('status', '?'):<9}  {created}  {what}"


class JobWatch:
    """A live bar for one job's stream: step k of n, the actor, its status; one log line per event above it.

    A job that fanned out ends when its children have: the gateway then reports ``children`` counts
    (``ended`` of ``total``), and the bar follows those instead of the steps.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[what]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.task = self.progress.add_task(job_id[:12], total=None, what="")
        self.steps: int | None = None
        self.done = 0

    def __enter__(self) -> JobWatch:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def event(self, kind: str, data: dict[str, Any]) -> None:
        route = data.get("route")
        actors = route.get("actors") if isinstance(route, dict) else None
        if isinstance(actors, list):
            self.steps = len(actors)
        elif isinstance(data.get("steps"), int) and data["steps"] > 0:
            self.steps = data["steps"]
        status, actor, step = str(data.get("status", kind)), data.get("actor"), data.get("step")
        # a report says the actor at `step` finished; sidecars report independently, so a later step's
        # report may arrive first: the bar only moves forward
        if kind == "progress" and isinstance(step, int) and status in ("success", "ended_early"):
            self.done = max(self.done, step + 1)
        if kind == "final" and status == "succeeded" and self.steps:
            self.done = self.steps
        children = data.get("children")
        line = [f"{kind:<9}"]
        if isinstance(children, dict) and isinstance(children.get("total"), int):
            ended, total = int(children.get("ended") or 0), children["total"]
            self.progress.update(self.task, total=max(total, 1), completed=ended, what=f"children {ended} of {total}")
            line.append(f"children {ended}/{total} ended ({_counts(children)})")
        else:
            if self.steps:
                what = f"step {self.done} of {self.steps}"
                self.progress.update(self.task, total=self.steps, completed=self.done, what=what)
            if isinstance(step, int):
                line.append(f"step {step + 1}/{self.steps or '?'}")
            if actor:
                line.append(str(actor))
        if "status" in data or kind != "progress":
            line.append(status)
        if isinstance(actors, list):
            line.append(": " + " → ".join(str(a) for a in actors))
        self.progress.update(self.task, description=escape(f"{self.job_id[:12]} {actor or ''} {status}"))
        self.progress.console.print(escape(" ".join(line)))


def _counts(children: dict[str, Any]) -> str:
    return ", ".join(f"{children.get(k, 0)} {k}" for k in ("succeeded", "failed", "cancelled"))


def job_outcome(event: dict[str, Any]) -> None:
    """The end of a watched job: the result (stdout, JSON) or what went wrong (stderr)."""
    status = event.get("status")
    if status == "succeeded":
        err_console.print("[green]succeeded[/]")
        # a fan-out parent has no result of its own: its children's counts stand for it
        result = event["result"] if "result" in event else {"children": event.get("children")}
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if status == "cancelled":
        err_console.print("[yellow]cancelled[/]")
        return
    error = event.get("error")
    detail = (error.get("message") or error.get("error")) if isinstance(error, dict) else error
    if isinstance(error, dict) and error.get("type") and detail:
        detail = f"{error['type']}: {detail}"
    reason = f" ({event['reason']})" if event.get("reason") else ""
    err_console.print(f"[red]{escape(str(status))}[/]{escape(reason)}: {escape(str(detail or 'no error message'))}")
    if event.get("uri"):
        err_console.print(f"  record: {escape(str(event['uri']))}")


def job_error(message: str) -> None:
    """A failure the user must act on (bad input, gateway refusal, broker problem), on stderr."""
    err_console.print(f"[red]error:[/] {escape(message)}")
