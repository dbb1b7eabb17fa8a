"""The folder store takes only plain relative keys, checked without touching the disk.

Keys come from ``safe_segment`` pieces of envelope ids (untrusted input), so the
store itself must refuse anything that could name a file outside its root,
and a real key must still round-trip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asya.storage.objects import FileStore, dated_key, put_once


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside.json", "a/../../outside.json", "a//b.json", "a/./b", "a\0b"]
)
async def test_keys_that_could_leave_the_root_are_refused(tmp_path: Path, key: str) -> None:
    store = FileStore(tmp_path / "root")
    with pytest.raises(ValueError, match="not a plain relative key"):
        await store.put(key, b"x")
    with pytest.raises(ValueError):
        await store.exists(key)
    assert not (tmp_path / "outside.json").exists()


async def test_a_dated_key_from_a_hostile_id_stays_inside_and_round_trips(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "root")
    key = dated_key("", 0.0, "../actor", "../../etc/x/..")
    uri = await put_once(store, "", 0.0, "../actor", "../../etc/x/..", b"body")
    assert uri == store.uri(key)
    assert await store.get(key) == b"body"
    assert store.key_of(uri) == key
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / "root" / key]
