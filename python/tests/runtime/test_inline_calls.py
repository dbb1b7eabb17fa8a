"""Sync handlers on the loop (``ASYA_RUNTIME_INLINE=auto``): a pooled trial first, back to the pool when slow.

Every test runs on the host interpreter and on bullseye's Python 3.9 (``runtime`` fixture).
"""

from __future__ import annotations

from typing import Any

from runtime.conftest import Launcher, envelope
from support.procs import wait_until

TRIAL = 32  # INLINE_PROBATION in server.py
LOOP = "MainThread"  # asyncio.run's thread


def thread_of(c: Any, **payload: Any) -> str:
    c.send(envelope(payload))
    (item,) = c.recv()
    return str(item["payload"]["thread"])


def test_a_fast_handler_runs_on_the_loop_after_its_trial_in_the_pool(runtime: Launcher, client) -> None:
    runtime("which_thread", ASYA_RUNTIME_INLINE="auto")
    c = client()
    trial = [thread_of(c) for _ in range(TRIAL)]
    assert LOOP not in trial, trial  # judged in the pool first: a handler that hangs at once cannot stall the loop
    assert [thread_of(c) for _ in range(5)] == [LOOP] * 5


def test_one_slow_inline_call_sends_the_handler_back_to_the_pool_for_good(runtime: Launcher, client) -> None:
    proc = runtime("which_thread", ASYA_RUNTIME_INLINE="auto")
    c = client()
    for _ in range(TRIAL):
        thread_of(c)
    assert thread_of(c, sleep_s=0.03) == LOOP  # the slow call itself already ran inline
    after = [thread_of(c) for _ in range(TRIAL + 5)]
    assert LOOP not in after, after
    wait_until(lambda: "sync calls go to the thread pool" in proc.log(), 10, what="the switch in the log")


def test_by_default_every_call_stays_in_the_pool(runtime: Launcher, client) -> None:
    runtime("which_thread")  # off unless asked: inline raised sidecar and broker CPU on a loaded machine
    c = client()
    threads = [thread_of(c) for _ in range(TRIAL + 5)]
    assert LOOP not in threads, threads


def test_inline_on_runs_on_the_loop_from_the_first_call(runtime: Launcher, client) -> None:
    runtime("which_thread", ASYA_RUNTIME_INLINE="on")
    assert thread_of(client()) == LOOP


def test_a_bad_inline_value_stops_the_runtime_with_the_choices(runtime: Launcher) -> None:
    proc = runtime.spawn("which_thread", ASYA_RUNTIME_INLINE="sometimes")
    wait_until(lambda: not proc.alive(), 15, what="the runtime to exit")
    assert "ASYA_RUNTIME_INLINE must be 'auto', 'off' or 'on', got 'sometimes'" in proc.log()
