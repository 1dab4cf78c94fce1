"""The quota tests' application runs on the clock they move by hand (a Friday afternoon in
Paris, tests.support.fixtures' `clock`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clock import FakeClock


@pytest.fixture
def app_overrides(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock}
