"""The REST API on a real PostgreSQL: create and publish, idempotency, auth, reads, pagination."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fixtures.rabbitmq import RabbitMQServer
from gateway_helpers import CLIENT_TOKEN, REPORT_TOKEN, RunningGateway, running_gateway, settings
from support.envelopes import user_headers

from asya import transports
from asya.contracts import decode_envelope
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(60)

BODY: dict[str, Any] = {"route": {"actors": ["prep", "infer"]}, "payload": {"text": "hi"}, "headers": {"trace": "t1"}}


async def take_one(settings_: TransportSettings, queue: str, timeout: float = 10) -> dict[str, Any]:
    t = transports.create(settings_)
    await t.connect()
    try:

        async def first() -> bytes:
            async for d in t.consume(queue, prefetch=1):
                await d.ack()
                return d.body
            raise AssertionError("consume ended")

        return dict(decode_envelope(await asyncio.wait_for(first(), timeout)))
    finally:
        await t.close()


async def test_create_publishes_the_envelope_to_the_first_actor(
    gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    async with gateway.client() as c:
        r = await c.post("/jobs", json=BODY)
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "queued" and job["origin"] == "gateway"
        assert r.headers["location"] == job["links"]["self"] == f"{gateway.url}/jobs/{job['id']}"
        env = await take_one(local_transport, "asya-prep")
        assert env["id"] == job["id"]
        assert env["route"] == {"actors": ["prep", "infer"], "current": 0}
        assert env["payload"] == {"text": "hi"} and user_headers(env) == {"trace": "t1"}
        got = (await c.get(f"/jobs/{job['id']}")).json()
        assert got["status"] == "queued" and got["payload"] == {"text": "hi"}


@pytest.mark.rabbitmq
async def test_create_publishes_on_rabbitmq_and_refuses_a_missing_queue(
    gateway_dsn: str, rabbitmq_server: RabbitMQServer
) -> None:
    transport = TransportSettings(kind="rabbitmq", url=rabbitmq_server.url, options={"queue_prefix": "gwtest-"})
    t = transports.create(transport)
    await t.connect()
    try:
        await t.ensure_queue("asya-prep")
        async with running_gateway(settings(gateway_dsn, transport)) as gw, gw.client() as c:
            r = await c.post("/jobs", json=BODY)
            assert r.status_code == 201, r.text
            env = await take_one(transport, "asya-prep")
            assert env["id"] == r.json()["id"]
            # a misspelt first actor: the broker refuses the publish, so no job exists for it
            bad = await c.post(
                "/jobs", json={**BODY, "route": {"actors": ["nosuch-queue"]}}, headers={"Idempotency-Key": "k"}
            )
            assert bad.status_code == 503, bad.text
            listed = (await c.get("/jobs")).json()["jobs"]
            assert [j["id"] for j in listed] == [r.json()["id"]]
    finally:
        await t.delete_queue("asya-prep")
        await t.close()


async def test_idempotency_key_returns_the_same_job_and_refuses_another_body(
    gateway: RunningGateway, local_transport: TransportSettings
) -> None:
    async with gateway.client() as c:
        first = await c.post("/jobs", json=BODY, headers={"Idempotency-Key": "order-42"})
        assert first.status_code == 201
        # the same request, fields in another order: the same job, not published again
        reordered = json.dumps({"payload": BODY["payload"], "headers": BODY["headers"], "route": BODY["route"]})
        again = await c.post("/jobs", content=reordered, headers={"Idempotency-Key": "order-42"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        other = await c.post(
            "/jobs", json={**BODY, "payload": {"text": "else"}}, headers={"Idempotency-Key": "order-42"}
        )
        assert other.status_code == 409 and other.json()["job_id"] == first.json()["id"]
        # concurrent duplicates: exactly one creates
        racing = await asyncio.gather(
            *(c.post("/jobs", json=BODY, headers={"Idempotency-Key": "race"}) for _ in range(8))
        )
        assert sorted(r.status_code for r in racing) == [200] * 7 + [201]
        assert len({r.json()["id"] for r in racing}) == 1
        assert len((await c.get("/jobs")).json()["jobs"]) == 2
    t = transports.create(local_transport)
    await t.connect()
    try:
        assert await t.queue_depth("asya-prep") == 2  # one envelope per job, none for the repeats
    finally:
        await t.close()


async def test_auth_refuses_missing_and_wrong_tokens_and_keeps_audiences_apart(gateway: RunningGateway) -> None:
    for token in (None, "wrong", REPORT_TOKEN):
        async with gateway.client(token) as c:
            for method, path in (
                ("POST", "/jobs"),
                ("GET", "/jobs"),
                ("GET", "/jobs/x"),
                ("GET", "/jobs/x/stream"),
                ("POST", "/jobs/x/cancel"),
            ):
                r = await c.request(method, path, json=BODY)
                assert r.status_code == 401, (token, method, path, r.status_code)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "token" not in r.text.replace("bearer token", "")
    for token in (None, "wrong", CLIENT_TOKEN):
        async with gateway.client(token) as c:
            r = await c.post("/jobs/x/progress", json={"id": "x"})
            assert r.status_code == 401
            assert (await c.post("/jobs/x/final", json={"id": "x", "status": "succeeded"})).status_code == 401
    async with gateway.client(None) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/openapi.json")).status_code == 200
    async with gateway.client() as c:
        assert (await c.get("/jobs")).status_code == 200


async def test_auth_off_lets_anyone_in(gateway_dsn: str, local_transport: TransportSettings) -> None:
    async with running_gateway(settings(gateway_dsn, local_transport, auth=False)) as gw, gw.client(None) as c:
        assert (await c.post("/jobs", json=BODY)).status_code == 201
        assert (await c.post("/jobs/x/progress", json={"status": "success"})).status_code == 200


async def test_bad_requests_are_422_naming_the_field_and_unknown_tools_404(gateway: RunningGateway) -> None:
    cases = [
        ({"route": {"actors": []}, "payload": 1}, "route.actors"),
        ({"route": {"actors": ["Bad_Name"]}, "payload": 1}, "route.actors[0]"),
        ({"route": {"actors": ["a", "happy-end"]}, "payload": 1}, "route.actors[1]"),
        ({"route": {"actors": ["a"]}}, "payload"),
        ({"route": {"actors": ["a"], "current": 1}, "payload": 1}, "route.current"),
        ({"route": {"actors": ["a"]}, "payload": 1, "headers": []}, "headers"),
        ({"route": {"actors": ["a"]}, "payload": 1, "extra": 1}, "extra"),
        ([1, 2], "body"),
    ]
    async with gateway.client() as c:
        for body, field in cases:
            r = await c.post("/jobs", json=body)
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        r = await c.post("/jobs", content=b"{not json")
        assert r.status_code == 422 and r.json()["field"] == "body"
        r = await c.post("/jobs", json={"tool": "summarise", "params": {}})  # this gateway has no tools
        assert r.status_code == 404 and r.json()["field"] == "tool", r.text
        assert (await c.get("/jobs", params={"status": "nope"})).status_code == 422
        assert (await c.get("/jobs", params={"limit": "0"})).status_code == 422
        assert (await c.get("/jobs", params={"cursor": "abc"})).status_code == 422
        assert (await c.get("/jobs/unknown")).status_code == 404
        assert (await c.post("/jobs/unknown/cancel")).status_code == 404
        assert (await c.get("/jobs")).json()["jobs"] == []


async def test_list_pages_with_a_cursor_and_filters_by_status(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        ids = [(await c.post("/jobs", json=BODY)).json()["id"] for _ in range(7)]
        assert (await c.post(f"/jobs/{ids[2]}/cancel")).json()["status"] == "cancelled"
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            page = (await c.get("/jobs", params=params)).json()
            seen += [j["id"] for j in page["jobs"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # a job created between pages must not shift the next page (keyset, not offset)
            if pages == 1:
                ids.append((await c.post("/jobs", json=BODY)).json()["id"])
        assert pages == 3
        assert seen == list(reversed(ids[:7]))  # newest first, each exactly once
        cancelled = (await c.get("/jobs", params={"status": "cancelled"})).json()["jobs"]
        assert [j["id"] for j in cancelled] == [ids[2]]
        queued = (await c.get("/jobs", params={"status": "queued"})).json()["jobs"]
        assert len(queued) == 7


async def test_openapi_document_describes_every_route(gateway: RunningGateway) -> None:
    from asya.gateway.app import ROUTES

    async with gateway.client(None) as c:
        doc = (await c.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (route.path.replace("{id:path}", "{id}"), method)
        for route in ROUTES
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert described == served
