"""Handlers of the text-insights example: plain Python, no Asya imports.

normalize -> chunk (fans out) -> classify (a class built once per runtime).
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def normalize(payload: dict[str, Any]) -> dict[str, Any]:
    """Unicode-normalise, fold whitespace; refuse documents with no text."""
    text = unicodedata.normalize("NFKC", str(payload.get("text", "")))
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ValueError(f"document {payload.get('doc')!r} has no text to analyse")
    return {"doc": payload.get("doc"), "text": text, "chars": len(text)}


def chunk(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Split on sentence boundaries into chunks of at most CHUNK_WORDS words; one envelope per chunk."""
    limit = int(os.environ.get("CHUNK_WORDS", "40"))
    current: list[str] = []
    index = 0
    for sentence in _SENTENCE.split(payload["text"]):
        words = sentence.split()
        if current and len(current) + len(words) > limit:
            yield {"doc": payload["doc"], "chunk": index, "text": " ".join(current)}
            index += 1
            current = []
        current.extend(words)
    if current:
        yield {"doc": payload["doc"], "chunk": index, "text": " ".join(current)}


class TopicClassifier:
    """Multinomial naive Bayes over a small labelled corpus shipped with the example."""

    def __init__(self) -> None:
        corpus = Path(__file__).with_name("training.jsonl").read_text().splitlines()
        self.word_counts: dict[str, Counter[str]] = {}
        self.doc_counts: Counter[str] = Counter()
        for line in corpus:
            row = json.loads(line)
            label = row["label"]
            self.doc_counts[label] += 1
            self.word_counts.setdefault(label, Counter()).update(_tokens(row["text"]))
        self.vocab = {w for counts in self.word_counts.values() for w in counts}
        self.totals = {label: sum(c.values()) for label, c in self.word_counts.items()}

    def classify(self, payload: dict[str, Any]) -> dict[str, Any]:
        tokens = _tokens(payload["text"])
        n_docs = sum(self.doc_counts.values())
        scores = {}
        for label, counts in self.word_counts.items():
            logp = math.log(self.doc_counts[label] / n_docs)
            denom = self.totals[label] + len(self.vocab)
            logp += sum(math.log((counts[t] + 1) / denom) for t in tokens if t in self.vocab)
            scores[label] = logp
        best = max(scores, key=lambda k: scores[k])
        top = max(scores.values())
        norm = sum(math.exp(v - top) for v in scores.values())
        return {
            "doc": payload["doc"],
            "chunk": payload["chunk"],
            "topic": best,
            "confidence": round(1 / norm, 3),
            "words": len(tokens),
            "text": payload["text"],
        }


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())
