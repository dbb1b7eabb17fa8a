"""One settings loader: the crew reads the same shared variables as the sidecars (transport options included)."""

from __future__ import annotations

from asya.crew.settings import CrewSettings
from asya.engine import EngineSettings
from asya.sidecar.settings import SidecarSettings

ENV = {
    "ASYA_ACTOR": "clean",
    "ASYA_TRANSPORT": "rabbitmq",
    "ASYA_TRANSPORT_URL": "amqp://u:p@127.0.0.1:5672/",
    "ASYA_TRANSPORT_OPT_QUEUE_TYPE": "quorum",
    "ASYA_PREFETCH": "7",
    "ASYA_MAX_DELIVERIES": "4",
    "ASYA_GRACEFUL_SHUTDOWN_S": "9",
    "ASYA_GATEWAY_URL": "http://gw:8080/",
    "ASYA_STORAGE_URL": "s3://bucket/prefix",
    "ASYA_S3_ENDPOINT_URL": "http://s3:8333",
    "ASYA_HTTP_PORT": "9100",
    "ASYA_PUBLISH_TIMEOUT_S": "4",
    "ASYA_GATEWAY_TOKEN": "report-secret",
    "ASYA_REPORT_RETRY_S": "12",
}


def _shared(settings: EngineSettings) -> tuple[object, ...]:
    return (
        settings.transport,
        settings.prefetch,
        settings.max_deliveries,
        settings.graceful_shutdown_s,
        settings.gateway_url,
        settings.gateway_token,
        settings.report_retry_s,
        settings.storage_url,
        settings.s3,
        settings.http_port,
    )


def test_crew_and_sidecar_read_the_same_shared_settings() -> None:
    sidecar = SidecarSettings.from_env(ENV).engine
    crew = CrewSettings.from_env(ENV).engine("happy-end")
    assert crew.transport.options == {"queue_type": "quorum"}, "the crew's queues would not match the sidecars'"
    assert _shared(crew) == _shared(sidecar)
    assert sidecar.transport.publish_timeout_s == 4.0
    assert (crew.gateway_token, crew.report_retry_s) == ("report-secret", 12.0)
    assert "report-secret" not in repr(CrewSettings.from_env(ENV))
    assert crew.actor == "happy-end" and sidecar.actor == "clean"


def test_older_spellings_of_the_crew_variables_still_work() -> None:
    old = {"ASYA_HEALTH_PORT": "9200", "ASYA_SHUTDOWN_GRACE_S": "3"}
    crew = CrewSettings.from_env(old)
    assert (crew.health_port, crew.shutdown_grace_s) == (9200, 3.0)
