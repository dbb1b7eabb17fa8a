"""Shared test configuration: fixtures for real servers live in tests/fixtures/."""

pytest_plugins: list[str] = ["fixtures.rabbitmq", "fixtures.s3", "fixtures.sqs", "fixtures.kube", "fixtures.postgres"]
