"""The runtime over a raw Unix socket, exactly as SPEC section 3 describes it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from runtime.conftest import envelope
from support.procs import wait_until


def test_ready_file_advertises_features_and_socket_exists(runtime, socket_dir: Path) -> None:
    runtime("echo")
    info = json.loads((socket_dir / "runtime-ready").read_text())
    assert info["protocol"] == 1
    assert set(info["features"]) == {"stream", "reuse"}
    assert (socket_dir / "asya-runtime.sock").is_socket()


def test_payload_mode_returns_array_with_route_advanced_and_headers_kept(runtime, client) -> None:
    runtime("add_one")
    c = client()
    c.send(envelope({"n": 1}, headers={"traceparent": "00-abc-def-01"}))
    out = c.recv()
    assert isinstance(out, list) and len(out) == 1
    assert out[0]["payload"]["n"] == 2
    assert out[0]["route"] == {"actors": ["a", "b"], "current": 1}
    assert out[0]["headers"] == {"traceparent": "00-abc-def-01"}


def test_one_connection_per_request_like_asya_0_1(runtime, client) -> None:
    runtime("echo")
    for i in range(3):
        c = client()
        c.send(envelope({"i": i}))
        assert c.recv()[0]["payload"] == {"i": i}
        c.close()


def test_connection_reuse_without_hello(runtime, client) -> None:
    runtime("echo")
    c = client()
    for i in range(3):
        c.send(envelope({"i": i}))
        assert c.recv()[0]["payload"] == {"i": i}


def test_list_fans_out_and_none_or_empty_end_early(runtime, client) -> None:
    runtime("fan_list")
    c = client()
    c.send(envelope({"n": 3}))
    assert [item["payload"] for item in c.recv()] == [{"i": 0}, {"i": 1}, {"i": 2}]
    c.send(envelope({"n": 0}))
    assert c.recv() == []


def test_none_returns_empty_array(runtime, client) -> None:
    runtime("nothing")
    c = client()
    c.send(envelope({}))
    assert c.recv() == []


def test_async_handler(runtime, client) -> None:
    runtime("async_double")
    c = client()
    c.send(envelope({"n": 21}))
    assert c.recv()[0]["payload"] == {"n": 42}


def test_class_handler_is_built_once(runtime, client) -> None:
    runtime("Stateful.handle")
    c = client()
    results = []
    for _ in range(3):
        c.send(envelope({}))
        results.append(c.recv()[0]["payload"])
    assert results == [{"instances": 1, "calls": 1}, {"instances": 1, "calls": 2}, {"instances": 1, "calls": 3}]


def test_generator_and_async_generator_fan_out(runtime, client) -> None:
    runtime("fan_gen")
    c = client()
    c.send(envelope({"n": 4}))
    assert [i["payload"]["i"] for i in c.recv()] == [0, 1, 2, 3]


def test_handler_error_item_has_code_type_message_traceback(runtime, client) -> None:
    runtime("boom")
    c = client()
    c.send(envelope("hello"))
    (item,) = c.recv()
    assert item["error"] == "processing_error"
    assert item["details"]["type"] == "ValueError"
    assert "boom" in item["details"]["message"]
    assert "Traceback" in item["details"]["traceback"] and "def boom" not in item["details"]["message"]


def test_not_json_serializable_result_is_a_processing_error(runtime, client) -> None:
    runtime("not_json")
    c = client()
    c.send(envelope({}))
    (item,) = c.recv()
    assert item["error"] == "processing_error"
    assert "not JSON-serializable" in item["details"]["message"]


def test_malformed_request_gives_msg_parsing_error(runtime, client) -> None:
    runtime("echo")
    c = client()
    c.send(None, raw=b"{not json")
    (item,) = c.recv()
    assert item["error"] == "msg_parsing_error"
    c.send({"id": "x", "route": {"actors": ["a"], "current": 0}})  # no payload
    (item,) = c.recv()
    assert item["error"] == "msg_parsing_error" and "payload" in item["details"]["message"]


def test_stream_extension_sends_items_before_the_generator_ends(runtime, client, tmp_path: Path) -> None:
    runtime("gated_gen")
    gate = tmp_path / "gate"
    c = client()
    c.send({"asya_hello": {"features": ["stream", "reuse"]}})
    assert set(c.recv()["asya_hello"]["features"]) == {"stream", "reuse"}
    c.send(envelope({"gate": str(gate)}))
    first = c.recv()  # arrives while the handler is still blocked on the gate
    assert first["item"]["payload"] == {"i": 0}
    assert not gate.exists()
    gate.write_text("go")
    assert c.recv()["item"]["payload"] == {"i": 1}
    assert c.recv() == {"end": True}


def test_envelope_mode_may_extend_the_route(runtime, client) -> None:
    runtime("add_step", mode="envelope")
    c = client()
    c.send(envelope({"extra": "c"}, headers={"k": "v"}, custom_field=7))
    (item,) = c.recv()
    assert item["route"] == {"actors": ["a", "b", "c"], "current": 1}
    assert item["custom_field"] == 7 and item["headers"] == {"k": "v"}


def test_envelope_mode_cannot_rewrite_done_or_current_steps(runtime, client) -> None:
    runtime("rewrite_done", mode="envelope")
    c = client()
    c.send(envelope({}))
    (item,) = c.recv()
    assert item["error"] == "processing_error"
    assert "only later steps may change" in item["details"]["message"]


def test_envelope_mode_may_leave_current_unchanged_to_loop_like_0_1(runtime, client) -> None:
    # 0.1.x sends such an envelope back to the same actor (a deliberate loop); the sidecar's hop budget bounds it.
    runtime("forget_to_advance", mode="envelope")
    c = client()
    sent = envelope({"n": 1}, headers={"k": "v"})
    c.send(sent)
    (item,) = c.recv()
    assert "error" not in item, item
    assert item["route"] == sent["route"] and item["payload"] == {"n": 1} and item["headers"] == {"k": "v"}


def test_sigterm_removes_socket_and_ready_file(runtime, socket_dir: Path) -> None:
    proc = runtime("echo")
    proc.signal(signal.SIGTERM)
    wait_until(lambda: not proc.alive(), 10, what="runtime exit")
    assert proc.popen.returncode == 0
    assert not (socket_dir / "runtime-ready").exists()
    assert not (socket_dir / "asya-runtime.sock").exists()


def test_bad_handler_path_exits_with_a_clear_message(runtime) -> None:
    proc = runtime.spawn("does_not_exist")
    wait_until(lambda: not proc.alive(), 30, what="runtime exit")
    assert proc.popen.returncode == 2
    assert "has no attribute 'does_not_exist'" in proc.log()
