"""Envelope validation names the field at fault; valid envelopes pass unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asya.contracts import EnvelopeError, decode_envelope, encode_envelope, schema_path, validate_envelope


def env(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "e1", "route": {"actors": ["a", "b"], "current": 0}, "payload": {"x": 1}}
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"\xff\xfe", "body"),
        (b"[1,2]", "envelope"),
        (json.dumps({"route": {"actors": ["a"], "current": 0}, "payload": 1}).encode(), "id"),
        (json.dumps(env(id="")).encode(), "id"),
        (json.dumps({"id": "x", "route": {"actors": ["a"], "current": 0}}).encode(), "payload"),
        (json.dumps(env(route={"actors": [], "current": 0})).encode(), "route.actors"),
        (json.dumps(env(route={"actors": ["a"], "current": 2})).encode(), "route.current"),
        (json.dumps(env(route={"actors": ["a"], "current": -1})).encode(), "route.current"),
        (json.dumps(env(route={"actors": ["a"], "current": True})).encode(), "route.current"),
        (json.dumps(env(route={"actors": ["Bad_Name"], "current": 0})).encode(), "route.actors[0]"),
        (json.dumps(env(route={"actors": ["a", "happy-end"], "current": 0})).encode(), "route.actors[1]"),
        (json.dumps(env(headers=[1])).encode(), "headers"),
        (json.dumps(env(parent_id=5)).encode(), "parent_id"),
    ],
)
def test_invalid_envelopes_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_envelope(body)
    assert info.value.field == field
    assert field in str(info.value)


def test_unknown_fields_and_headers_round_trip() -> None:
    original = env(headers={"traceparent": "00-1-2-01", "x-user": "k"}, extra_top={"keep": True}, parent_id="p")
    assert decode_envelope(encode_envelope(original)) == original


def test_current_equal_to_len_means_done_and_is_valid() -> None:
    validate_envelope(env(route={"actors": ["a"], "current": 1}))


def test_null_payload_is_allowed() -> None:
    validate_envelope(env(payload=None))


def test_schema_file_ships_and_agrees_on_required_fields() -> None:
    schema = json.loads(schema_path().read_text())
    assert set(schema["required"]) == {"id", "route", "payload"}
    assert schema["additionalProperties"] is True
