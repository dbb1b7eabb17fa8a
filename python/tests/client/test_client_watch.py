"""``Client.watch``: every event of a job once, in order, up to ``final`` — across a cut connection and a restarted gateway.

The job is driven by reports posted with the report token (what sidecars and
end actors send); the stream is read by the real client in a worker thread,
through a ``Relay`` the test cuts at a chosen event. While the client is cut
off more events are stored, so resuming must fetch them from history with
``Last-Event-ID``: a client that resumed from 0 would repeat events, one that
resumed past its last event would miss some.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator

import pytest
from fixtures.gateway_threads import CLIENT_TOKEN, Relay, ThreadedGateway, port_of
from support.procs import wait_until

from asya import client
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(60)


class Watcher:
    """Runs ``client.watch(job_id)`` in a thread, recording every event it yields."""

    def __init__(self, c: client.Client, job_id: str) -> None:
        self.events: list[client.Event] = []
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self.done = self._pool.submit(self._run, c, job_id)

    def _run(self, c: client.Client, job_id: str) -> None:
        for event in c.watch(job_id):
            with self._lock:
                self.events.append(event)

    def seen(self, n: int) -> bool:
        with self._lock:
            return len(self.events) >= n

    def result(self, timeout: float = 30) -> list[client.Event]:
        self.done.result(timeout)
        self._pool.shutdown()
        return self.events


@pytest.fixture
def relay(threaded_gateway: ThreadedGateway) -> Iterator[Relay]:
    r = Relay(port_of(threaded_gateway.url))
    try:
        yield r
    finally:
        r.close()


def test_watch_yields_history_then_live_events_and_ends_at_final(threaded_gateway: ThreadedGateway) -> None:
    gw = threaded_gateway
    with client.Client(gw.url, CLIENT_TOKEN) as c:
        job = c.submit(["prep", "infer"], {"n": 1})
        gw.progress(job["id"], "prep", 0, 2)  # history: in the table before the stream opens
        watcher = Watcher(c, job["id"])
        wait_until(lambda: watcher.seen(2), what="history streamed")
        gw.progress(job["id"], "infer", 1, 2)  # live
        gw.report("final", job["id"], {"status": "succeeded", "actor": "happy-end", "result": {"n": 3}})
        events = watcher.result()
    assert [e.kind for e in events] == ["created", "progress", "progress", "final"]
    assert [e.id for e in events] == sorted({e.id for e in events})
    assert events[-1].final and events[-1].status == "succeeded" and events[-1].data["result"] == {"n": 3}


def test_a_cut_connection_resumes_with_last_event_id_missing_and_repeating_nothing(
    threaded_gateway: ThreadedGateway, relay: Relay
) -> None:
    gw = threaded_gateway
    with client.Client(relay.url, CLIENT_TOKEN, reconnect_delay_s=0.05) as c:
        job = c.submit(["a", "b", "c", "d"], {"n": 1})
        job_id = job["id"]
        watcher = Watcher(c, job_id)
        gw.progress(job_id, "a", 0, 4)
        wait_until(lambda: watcher.seen(2), what="created + first progress")
        last_seen = watcher.events[-1].id
        relay.cut(hold=True)  # the network drops, and stays down while more happens
        gw.progress(job_id, "b", 1, 4)
        gw.progress(job_id, "c", 2, 4)
        wait_until(lambda: c.reconnects >= 2, what="the client retrying while the relay refuses")
        relay.resume()
        wait_until(lambda: watcher.seen(4), what="the events stored during the outage")
        gw.progress(job_id, "d", 3, 4)
        gw.report("final", job_id, {"status": "succeeded", "actor": "happy-end", "result": {"n": 5}})
        events = watcher.result()
    assert [e.kind for e in events] == ["created"] + ["progress"] * 4 + ["final"]
    assert [e.data.get("actor") for e in events[1:5]] == ["a", "b", "c", "d"]
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), f"repeated or out of order: {ids}"
    with client.Client(gw.url, CLIENT_TOKEN) as direct:
        stored = [e.id for e in direct.watch(job_id)]
    assert ids == stored, f"missed events: watched {ids}, stored {stored}"
    resumed = [b for b in relay.first_bytes if f"/jobs/{job_id}/stream".encode() in b][-1]
    assert f"last-event-id: {last_seen}".encode() in resumed.lower()


def test_a_restarted_gateway_resumes_the_stream_on_the_new_replica(
    threaded_gateway: ThreadedGateway, relay: Relay, gateway_db: str, tmp_path: object
) -> None:
    old = threaded_gateway
    with client.Client(relay.url, CLIENT_TOKEN, reconnect_delay_s=0.05) as c:
        job_id = c.submit(["a", "b"], {"n": 1})["id"]
        old.progress(job_id, "a", 0, 2)
        watcher = Watcher(c, job_id)
        wait_until(lambda: watcher.seen(2), what="created + first progress")
        relay.cut(hold=True)
        old.stop()  # every open stream on it ends; the job lives on in PostgreSQL
        new = ThreadedGateway(gateway_db, TransportSettings(kind="local", url=str(old.settings.transport.url))).start()
        try:
            new.progress(job_id, "b", 1, 2)
            relay.resume(port_of(new.url))
            wait_until(lambda: watcher.seen(3), what="the event stored while no gateway served the stream")
            new.report("final", job_id, {"status": "failed", "actor": "error-end", "error": {"message": "boom"}})
            events = watcher.result()
        finally:
            new.stop()
    assert [(e.kind, e.data.get("actor")) for e in events] == [
        ("created", None),
        ("progress", "a"),
        ("progress", "b"),
        ("final", "error-end"),
    ]
    assert len({e.id for e in events}) == 4 and c.reconnects >= 1


def test_watch_gives_up_with_a_clear_error_when_the_gateway_stays_away(
    threaded_gateway: ThreadedGateway, relay: Relay
) -> None:
    with client.Client(relay.url, CLIENT_TOKEN, reconnect_delay_s=0.05, reconnect_for_s=0.5) as c:
        job_id = c.submit(["a"], {"n": 1})["id"]
        watcher = Watcher(c, job_id)
        wait_until(lambda: watcher.seen(1), what="created")
        relay.cut(hold=True)
        with pytest.raises(client.ConnectionFailedError, match=f"lost the stream of job {job_id} after event"):
            watcher.result()
