"""Pure: the operator configuration file (transports, sidecar defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asya.operator import config
from asya.operator.settings import OperatorSettings


def test_transports_are_parsed() -> None:
    cfg = config.parse_config(
        {
            "transports": {
                "mq": {"type": "rabbitmq", "urlEnv": "MQ_URL", "secretRef": {"name": "s", "key": "url"}},
                "sqs": {"type": "sqs", "region": "eu-west-1", "endpoint": "http://e:9324", "podIdentity": "aws"},
            },
            "sidecar": {"image": "img:1", "env": [{"name": "A", "value": "1"}]},
            "gatewayUrl": "http://gw",
            "gatewayToken": {"name": "gw-auth", "key": "report-token"},
        },
        env={"MQ_URL": "amqp://u:p@h/"},
    )
    mq = cfg.transports["mq"]
    assert mq.url == "amqp://u:p@h/" and mq.url_secret == config.SecretKeyRef("s", "url") and mq.can_scale
    assert cfg.transports["sqs"].url == "http://e:9324" and cfg.transports["sqs"].pod_identity == "aws"
    assert cfg.sidecar.image == "img:1" and cfg.gateway_url == "http://gw"
    assert cfg.gateway_token_secret == config.SecretKeyRef("gw-auth", "report-token")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"transports": {"x": {"type": "kafka"}}}, "transports.x.type"),
        ({"transports": {"x": {"type": "rabbitmq", "url": "amqp://u:pw@h/"}}}, "holds a password"),
        ({"transports": {"x": {"type": "rabbitmq", "urlEnv": "NOPE"}}}, "NOPE is not set"),
        ({"transports": {"x": {"type": "rabbitmq", "secretRef": {"name": "s"}}}}, "needs 'name' and 'key'"),
        ([1, 2], "must be a mapping"),
        ({"gatewayUrl": "http://gw", "gatewayToken": {"name": "s"}}, "gatewayToken: needs 'name' and 'key'"),
    ],
)
def test_bad_config_names_the_key(raw: object, words: str) -> None:
    with pytest.raises(config.ConfigError, match=words):
        config.parse_config(raw, env={})


def test_missing_file_means_no_transports(tmp_path: Path) -> None:
    assert config.load_config(tmp_path / "none.yaml").transports == {}


def test_settings_from_env() -> None:
    s = OperatorSettings.from_env(
        {"ASYA_OPERATOR_NAMESPACES": "a, b-*", "ASYA_OPERATOR_STATUS_INTERVAL_S": "2.5", "ASYA_OPERATOR_CONFIG": "/c"}
    )
    assert s.namespaces == ("a", "b-*") and s.status_interval_s == 2.5 and str(s.config_path) == "/c"


def test_operator_exits_with_the_reason_on_a_bad_config_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    cfg = tmp_path / "operator.yaml"
    cfg.write_text("transports: {x: {type: kafka}}\n")
    env = {**os.environ, "ASYA_OPERATOR_CONFIG": str(cfg), "KUBECONFIG": str(tmp_path / "none")}
    done = subprocess.run([sys.executable, "-m", "asya.operator"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "transports.x.type: must be one of local, rabbitmq, sqs, got 'kafka'" in done.stdout + done.stderr
