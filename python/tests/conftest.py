"""Shared test configuration: fixtures for real servers live in tests/fixtures/."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

pytest_plugins: list[str] = ["fixtures.rabbitmq", "fixtures.s3", "fixtures.sqs", "fixtures.kube", "fixtures.postgres"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep each phase's report on the item (``rep_call``), so fixtures can print process logs on failure."""
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep
