"""A hung handler, a dying runtime and a killed sidecar all end in a defined place."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

from sidecar.conftest import Actors, Bus, envelope, on_every_broker
from support.procs import wait_until


@on_every_broker
async def test_hung_handler_times_out_to_error_end_and_the_actor_keeps_working(bus: Bus, actors: Actors) -> None:
    me, nxt = bus.actor("slow"), bus.actor("next")
    actors.start(
        me, "hang_if_asked", runtime_env={"ASYA_RUNTIME_DRAIN_S": "1"}, ASYA_PROCESSING_TIMEOUT_S="1", ASYA_PREFETCH="2"
    )
    await bus.publish(me, envelope("hang-1", [me, nxt], {"hang": True}))
    (dead,) = await bus.collect(bus.error_end, 1)
    assert dead["payload"]["error"] == "timeout_error"
    assert "did not finish within 1s" in dead["payload"]["details"]["message"]
    # The abandoned call keeps one runtime thread busy; the actor still serves other envelopes.
    await bus.publish(me, envelope("ok-1", [me, nxt], {"hang": False}))
    (out,) = await bus.collect(nxt, 1)
    assert out["id"] == "ok-1"


async def test_runtime_killed_mid_message_is_redelivered_and_processed(
    bus: Bus, actors: Actors, tmp_path: Path
) -> None:
    me, nxt = bus.actor("fragile"), bus.actor("next")
    pair = actors.start(me, "die_once")
    marker = tmp_path / "died"
    await bus.publish(me, envelope("d-1", [me, nxt], {"marker": str(marker)}))
    wait_until(lambda: not pair.runtime.alive(), 20, what="runtime to die")
    assert marker.exists()
    pair.restart_runtime(actors.log_dir)  # what the kubelet / asya dev run supervisor does
    (out,) = await bus.collect(nxt, 1)
    assert out["id"] == "d-1" and out["payload"] == {"survived": True}


async def test_runtime_that_always_dies_goes_to_error_end_after_max_deliveries(bus: Bus, actors: Actors) -> None:
    me = bus.actor("crashy")
    pair = actors.start(me, "die", ASYA_MAX_DELIVERIES="2")
    await bus.publish(me, envelope("c-1", [me, bus.actor("next")], {}))
    for _ in range(2):
        wait_until(lambda: not pair.runtime.alive(), 20, what="runtime to die")
        pair.restart_runtime(actors.log_dir, may_die=True)
    (dead,) = await bus.collect(bus.error_end, 1, timeout=40)
    assert dead["payload"]["error"] == "connection_error"
    assert "on 2 deliveries" in dead["payload"]["details"]["message"]


@on_every_broker
async def test_sidecar_sigkill_mid_message_redelivers_and_nothing_is_lost(bus: Bus, actors: Actors) -> None:
    me, nxt = bus.actor("waiter"), bus.actor("next")
    d = Path(tempfile.mkdtemp())
    pair = actors.start(me, "wait_for_file", ASYA_PREFETCH="4")
    for n in range(3):
        await bus.publish(
            me, envelope(f"k-{n}", [me, nxt], {"n": n, "started": str(d / f"started-{n}"), "gate": str(d / "gate")})
        )
    wait_until(lambda: (d / "started-0").exists(), 20, what="a message in flight")
    os.kill(pair.sidecar.pid, signal.SIGKILL)
    pair.sidecar.popen.wait(10)
    (d / "gate").write_text("open")
    actors.sidecar(pair)
    outs = await bus.collect(nxt, 3, timeout=60)
    assert sorted(o["id"] for o in outs)[:3] == ["k-0", "k-1", "k-2"]


async def test_sigterm_drains_in_flight_envelopes_then_exits(bus: Bus, actors: Actors) -> None:
    me, nxt = bus.actor("drainer"), bus.actor("next")
    d = Path(tempfile.mkdtemp())
    pair = actors.start(me, "wait_for_file", ASYA_GRACEFUL_SHUTDOWN_S="20")
    await bus.publish(me, envelope("g-1", [me, nxt], {"n": 1, "started": str(d / "s"), "gate": str(d / "gate")}))
    wait_until(lambda: (d / "s").exists(), 20, what="message in flight")
    pair.sidecar.signal(signal.SIGTERM)
    (d / "gate").write_text("open")
    (out,) = await bus.collect(nxt, 1)
    assert out["id"] == "g-1"
    wait_until(lambda: not pair.sidecar.alive(), 20, what="sidecar exit")
    assert pair.sidecar.popen.returncode == 0
