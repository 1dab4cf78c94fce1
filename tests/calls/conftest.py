"""The calls tests' paced fake provider, for the session (tests/calls/pacing.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.calls.pacing import PacedProvider, running_paced_provider


@pytest.fixture(scope="session")
def paced() -> Iterator[PacedProvider]:
    with running_paced_provider() as provider:
        yield provider
