"""Tools through the client: ``submit(tool=...)``, ``call_tool`` and deadlines, on a gateway serving the example's tools."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.gateway_threads import CLIENT_TOKEN, ThreadedGateway

from asya import client
from asya.transports import TransportSettings

pytestmark = pytest.mark.timeout(60)

TOOLS = Path(__file__).resolve().parents[3] / "examples" / "01-text-pipeline" / "gateway-tools.yaml"


@pytest.fixture
def tool_gateway(gateway_db: str, tmp_path: Path) -> Iterator[ThreadedGateway]:
    transport = TransportSettings(kind="local", url=str(tmp_path / "queues"))
    gw = ThreadedGateway(gateway_db, transport, tool_paths=(TOOLS,)).start()
    try:
        yield gw
    finally:
        gw.stop()


def test_a_tool_call_creates_a_job_on_the_tools_route(tool_gateway: ThreadedGateway) -> None:
    with client.Client(tool_gateway.url, CLIENT_TOKEN) as c:
        job = c.submit(tool="classify_document", params={"doc": "d1", "text": "The home team won."}, timeout_s=300)
        assert job["tool"] == "classify_document" and job["route"]["actors"] == ["normalize", "chunk", "classify"]
        assert c.get(job["id"])["payload"] == {"doc": "d1", "text": "The home team won."}
        answer = c.call_tool("classify_document", {"doc": "d2", "text": "x"})
        assert answer["status"] == "queued" and answer["stream_url"].endswith(f"/jobs/{answer['job_id']}/stream")
        assert c.get(answer["job_id"])["tool"] == "classify_document"


def test_tool_refusals_name_the_field(tool_gateway: ThreadedGateway) -> None:
    with client.Client(tool_gateway.url, CLIENT_TOKEN) as c:
        with pytest.raises(client.InvalidRequestError) as info:
            c.submit(tool="classify_document", params={"doc": "d1", "text": ""})
        assert info.value.field == "params.text"
        with pytest.raises(client.InvalidRequestError) as info:
            c.submit(["prep"], {"n": 1}, deadline=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1))
        assert info.value.field == "deadline"
        with pytest.raises(client.NotFoundError) as missing:
            c.submit(tool="no_such_tool", params={})
        assert missing.value.body.get("field") == "tool"
