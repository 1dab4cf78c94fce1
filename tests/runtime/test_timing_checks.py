"""The growth checks the adversarial-input tests rely on (tests/support/timing.py) pass a
linear function and fail a quadratic one, retry included."""

from __future__ import annotations

import pytest

from tests.support.timing import assert_linear


def _linear(text: str) -> int:
    return sum(1 for _ in text)


def _quadratic(text: str) -> int:
    return sum(1 for i in range(len(text)) for _ in range(i))


def test_a_linear_function_passes() -> None:
    assert_linear(_linear, lambda n: "a" * n, 20_000)


def test_a_quadratic_function_fails_even_when_measured_twice() -> None:
    with pytest.raises(AssertionError, match="not linear"):
        assert_linear(_quadratic, lambda n: "a" * n, 200)
