"""``Client.submit/get/list/cancel`` against a real gateway on real PostgreSQL (local transport)."""

from __future__ import annotations

import pytest
from fixtures.gateway_threads import CLIENT_TOKEN, ThreadedGateway

from asya import client

pytestmark = pytest.mark.timeout(60)


def test_submit_get_cancel_round_trip(threaded_gateway: ThreadedGateway) -> None:
    with client.Client(threaded_gateway.url, CLIENT_TOKEN) as c:
        job = c.submit(["prep", "infer"], {"text": "hi"}, metadata={"who": "test"})
        assert job["status"] == "queued"
        assert job["route"]["actors"] == ["prep", "infer"]
        got = c.get(job["id"])
        assert got["id"] == job["id"] and got["payload"] == {"text": "hi"}
        assert got["route"]["metadata"] == {"who": "test"}
        cancelled = c.cancel(job["id"])
        assert cancelled["status"] == "cancelled"
        assert c.get(job["id"])["status"] == "cancelled"


def test_idempotency_key_gives_the_same_job_and_a_different_body_is_a_conflict(
    threaded_gateway: ThreadedGateway,
) -> None:
    with client.Client(threaded_gateway.url, CLIENT_TOKEN) as c:
        first = c.submit(["prep"], {"n": 1}, idempotency_key="k-1")
        again = c.submit(["prep"], {"n": 1}, idempotency_key="k-1")
        assert again["id"] == first["id"]
        with pytest.raises(client.ConflictError) as info:
            c.submit(["prep"], {"n": 2}, idempotency_key="k-1")
        assert info.value.status == 409 and info.value.job_id == first["id"]


def test_list_filters_by_status_and_iter_jobs_follows_cursors(threaded_gateway: ThreadedGateway) -> None:
    with client.Client(threaded_gateway.url, CLIENT_TOKEN) as c:
        ids = [c.submit(["prep"], {"i": i})["id"] for i in range(5)]
        c.cancel(ids[1])
        c.cancel(ids[3])
        page = c.list(limit=2)
        assert [j["id"] for j in page.jobs] == [ids[4], ids[3]] and page.next_cursor
        assert [j["id"] for j in c.iter_jobs(page_size=2)] == ids[::-1]
        assert [j["id"] for j in c.iter_jobs(status="cancelled", page_size=1)] == [ids[3], ids[1]]
        assert [j["id"] for j in c.list(status="queued").jobs] == [ids[4], ids[2], ids[0]]


def test_url_and_token_come_from_the_environment(
    threaded_gateway: ThreadedGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASYA_GATEWAY_URL", threaded_gateway.url)
    monkeypatch.setenv("ASYA_CLIENT_TOKEN", CLIENT_TOKEN)
    monkeypatch.setenv("ASYA_GATEWAY_TOKEN", "the-report-token-must-not-be-used")
    with client.Client() as c:
        assert c.submit(["prep"], None)["status"] == "queued"


def test_no_url_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYA_GATEWAY_URL", raising=False)
    with pytest.raises(client.ClientError, match="ASYA_GATEWAY_URL"):
        client.Client()
