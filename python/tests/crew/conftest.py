"""Fixtures for crew tests; the helpers live in crew_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from crew_helpers import settings_for

from asya.crew.settings import CrewSettings


@pytest.fixture
def crew_settings(tmp_path: Path) -> CrewSettings:
    return settings_for(tmp_path)
