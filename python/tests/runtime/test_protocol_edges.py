"""Edges of the socket protocol: the hello, oversized frames, failing generators, what gets logged.

Every test runs on the host interpreter and on bullseye's Python 3.9 (``runtime`` fixture).
"""

from __future__ import annotations

import signal
import struct
from pathlib import Path

import pytest
from runtime.conftest import Launcher, envelope
from support.procs import Proc, wait_until

from asya.contracts import protocol


def logged(proc: Proc, text: str, count: int = 1) -> str:
    """Wait until ``text`` is in the runtime's log, then check it appears exactly ``count`` times."""
    log = wait_until(lambda: text in proc.log() and proc.log(), 10, what=f"{text!r} in the runtime log")
    assert log.count(text) == count, log
    return log


def test_envelope_with_a_top_level_asya_hello_field_is_processed(runtime: Launcher, client) -> None:
    runtime("add_one")
    c = client()
    c.send(envelope({"n": 1}, asya_hello={"features": ["stream"]}))
    out = c.recv()
    assert isinstance(out, list) and out[0]["payload"]["n"] == 2  # an answer, not a hello reply
    c.send(envelope({"n": 5}))  # and the connection was not switched to stream frames
    assert c.recv()[0]["payload"]["n"] == 6


def test_asya_hello_field_survives_in_envelope_mode(runtime: Launcher, client) -> None:
    runtime("add_step", mode="envelope")
    c = client()
    c.send(envelope({"extra": "c"}, asya_hello={"anything": [1]}))
    (item,) = c.recv()
    assert item["asya_hello"] == {"anything": [1]}
    assert item["route"] == {"actors": ["a", "b", "c"], "current": 1}


def test_hello_frame_is_a_one_key_object(runtime: Launcher, client) -> None:
    runtime("fan_gen")
    c = client()
    c.send({"asya_hello": {"protocol": 1, "features": ["stream"]}})
    assert c.recv() == {"asya_hello": {"protocol": 1, "features": ["stream"]}}
    c.send(envelope({"n": 2}))
    assert [c.recv(), c.recv(), c.recv()] == [
        {"item": {"payload": {"i": 0}, "route": {"actors": ["a", "b"], "current": 1}}},
        {"item": {"payload": {"i": 1}, "route": {"actors": ["a", "b"], "current": 1}}},
        {"end": True},
    ]


def test_oversized_frame_is_answered_with_the_limit(runtime: Launcher, client) -> None:
    proc = runtime("echo")
    c = client()
    size = protocol.MAX_FRAME_BYTES + 1
    c.sock.sendall(struct.pack(">I", size) + b'{"id": "e-huge", "payload": "xxxxxxxx')
    (item,) = c.recv()
    assert item["error"] == "msg_parsing_error"
    assert item["details"]["type"] == "FrameTooLarge"
    message = item["details"]["message"]
    assert f"{size} bytes" in message and f"limit of {protocol.MAX_FRAME_BYTES} bytes" in message
    assert "MAX_FRAME_BYTES" in message and "by reference" in message
    c.sock.shutdown(2)  # a sender that stops short: the runtime drops the connection
    logged(proc, f"refused request: request frame of {size} bytes")
    fresh = client()  # the runtime itself is fine
    fresh.send(envelope({"ok": 1}))
    assert fresh.recv()[0]["payload"] == {"ok": 1}


def test_oversized_frame_in_stream_mode_gets_stream_frames(runtime: Launcher, client) -> None:
    runtime("echo")
    c = client()
    c.send({"asya_hello": {"features": ["stream"]}})
    c.recv()
    c.sock.sendall(struct.pack(">I", protocol.MAX_FRAME_BYTES + 10))
    item = c.recv()
    assert item["item"]["error"] == "msg_parsing_error" and "by reference" in item["item"]["details"]["message"]
    assert c.recv() == {"end": True}


@pytest.mark.parametrize("handler", ["fail_after_gen", "fail_after_async_gen"])
def test_generator_failing_after_items_says_how_many_left(runtime: Launcher, client, handler: str) -> None:
    proc = runtime(handler)
    c = client()
    c.send(envelope({"n": 3}))
    *items, error = c.recv()
    assert [i["payload"] for i in items] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert error["error"] == "processing_error" and error["details"]["type"] == "RuntimeError"
    assert error["details"]["items_before_error"] == 3
    c.send(envelope({"n": 0}))
    (error,) = c.recv()
    assert error["details"]["items_before_error"] == 0
    logged(proc, "envelope e-1: handler failed after 3 output(s)")


def test_generator_failure_in_stream_mode(runtime: Launcher, client) -> None:
    runtime("fail_after_gen")
    c = client()
    c.send({"asya_hello": {"features": ["stream", "reuse"]}})
    c.recv()
    c.send(envelope({"n": 2}))
    frames = [c.recv() for _ in range(4)]
    assert [f["item"]["payload"] for f in frames[:2]] == [{"i": 0}, {"i": 1}]
    assert frames[2]["item"]["details"]["items_before_error"] == 2
    assert frames[3] == {"end": True}


def test_bad_frames_are_logged_once_with_the_reason(runtime: Launcher, client) -> None:
    proc = runtime("echo")
    c = client()
    c.send(None, raw=b"{not json")
    c.recv()
    logged(proc, "request is not valid JSON (9 bytes)")
    c.send({"id": "e-nopayload", "route": {"actors": ["a"], "current": 0}})
    c.recv()
    logged(proc, "rejected request (envelope e-nopayload): envelope has no 'payload'")
    c.sock.sendall(struct.pack(">I", 100) + b"0123456789")  # a frame cut short
    c.close()
    logged(proc, "connection lost in the middle of a request frame")


def test_answer_with_nobody_to_read_it_is_logged_with_the_envelope_id(
    runtime: Launcher, client, tmp_path: Path
) -> None:
    proc = runtime("wait_for_file")
    started, gate = tmp_path / "started", tmp_path / "gate"
    c = client()
    c.send({**envelope({"started": str(started), "gate": str(gate), "n": 1}), "id": "e-gone"})
    wait_until(started.exists, 10, what="handler started")
    c.close()  # as a sidecar does when its processing timeout expires
    gate.write_text("go")
    logged(proc, "connection lost before the result of envelope e-gone was sent")


def test_sigterm_with_a_stuck_call_exits_after_the_drain_window(runtime: Launcher, client, tmp_path: Path) -> None:
    # asyncio.wait_for raises asyncio.TimeoutError, which is not TimeoutError before 3.11.
    proc = runtime("wait_for_file", ASYA_RUNTIME_DRAIN_S="0.2")
    started = tmp_path / "started"
    c = client()
    c.send(envelope({"started": str(started), "gate": str(tmp_path / "never"), "n": 1}))
    wait_until(started.exists, 10, what="handler started")
    proc.signal(signal.SIGTERM)
    wait_until(lambda: not proc.alive(), 10, what="runtime exit after the drain window")
    assert proc.popen.returncode == 0, proc.log()
    logged(proc, "call(s) still running after")
