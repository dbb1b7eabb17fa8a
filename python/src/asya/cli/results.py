"""What ``asya dev run`` finds in its results folder: the record of truth for the summary.

Layout (written by happy-end and error-end through ``asya.storage.FileStore``)::

    results/<YYYY-MM-DD>/<last actor>/<id>.json          stored results
    results/errors/<YYYY-MM-DD>/<actor>/<id>.json        dead letters

Ids come from the file names (``safe_segment`` quoting undone). Hidden entries
(FileStore's temp folder, ``.tmp-*`` files a killed writer left behind) are
never counted; ``sweep_temp`` deletes stray ``.tmp-*`` files.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from pathlib import Path

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclasses.dataclass(frozen=True)
class Scan:
    """Stored files by id (a list: the same id may sit under two days or two actors)."""

    results: dict[str, list[Path]]
    dead_letters: dict[str, list[Path]]

    def result_files(self) -> int:
        return sum(len(v) for v in self.results.values())

    def dead_letter_files(self) -> int:
        return sum(len(v) for v in self.dead_letters.values())


def _ids(base: Path, skip: set[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    if not base.is_dir():
        return found
    for day in base.iterdir():
        if not day.is_dir() or not _DAY.match(day.name):
            continue
        for actor in day.iterdir():
            if not actor.is_dir() or actor.name.startswith("."):
                continue
            for path in actor.iterdir():
                if path.name.startswith(".") or path.suffix != ".json" or path in skip or not path.is_file():
                    continue
                found.setdefault(urllib.parse.unquote(path.stem), []).append(path)
    return found


def scan(results_dir: Path, ignore: frozenset[Path] = frozenset()) -> Scan:
    """Every result and dead-letter file under ``results_dir``, except the paths in ``ignore``."""
    skip = set(ignore)
    return Scan(_ids(results_dir, skip), _ids(results_dir / "errors", skip))


def snapshot(results_dir: Path) -> frozenset[Path]:
    """The files present now: a reused ``--out`` folder keeps earlier runs' files out of this run's summary."""
    s = scan(results_dir)
    return frozenset(p for paths in (*s.results.values(), *s.dead_letters.values()) for p in paths)


def sweep_temp(results_dir: Path) -> int:
    """Delete ``.tmp-*`` files a writer killed mid-write left among the results; how many."""
    if not results_dir.is_dir():
        return 0
    removed = 0
    for path in results_dir.rglob(".tmp-*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
