"""Complexity checks that hold on a loaded machine: a function given an input GROWTH times
larger must take at most about GROWTH times longer, never GROWTH² (quadratic) or GROWTH³
(cubic). Wall-clock thresholds would flake under load; a ratio of two timings taken on the
same machine, a moment apart, best of several, does not."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

GROWTH = 16
# Linear growth gives GROWTH, quadratic GROWTH² = 256: the bound sits four times above the
# one and below the other.
_ALLOWED = 4 * GROWTH
# Each doubling of the input may take this many times as long as the previous one (linear:
# 2, cubic: 8): a cubic regression fails at the first doubling, not after hours.
_STEP = 6
# The smallest input is meant to take milliseconds: past this, no need to try larger ones.
_SMALL_MAX_S = 0.5


def best_time(run: Callable[[T], object], value: T, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run(value)
        best = min(best, time.perf_counter() - started)
    return best


def _series(
    run: Callable[[T], object], make: Callable[[int], T], size: int, noise_s: float
) -> str | None:
    """Why the growth is not linear, or None."""
    small_s = previous_s = best_time(run, make(size))
    if small_s >= _SMALL_MAX_S:
        return f"{small_s:.2f} s for the smallest input: not linear"
    factor = 2
    while factor <= GROWTH:
        took = best_time(run, make(factor * size), repeat=2)
        if took > min(_STEP * previous_s, _ALLOWED * small_s) + noise_s:
            return (
                f"{factor}× the input took {took / max(small_s, 1e-9):.0f}× as long "
                f"({small_s:.4f} s, then {took:.4f} s): not linear"
            )
        previous_s = took
        factor *= 2
    return None


def assert_linear(
    run: Callable[[T], object],
    make: Callable[[int], T],
    size: int,
    *,
    noise_s: float = 0.02,
) -> None:
    """`run` on `make(size)`, then on inputs twice, four… GROWTH times larger (each built
    before the clock starts): GROWTH times the input may take at most _ALLOWED times as
    long, and each doubling _STEP times as long as the one before. `noise_s` absorbs a
    scheduling hiccup on tiny timings. A series that fails is measured once more: another
    process's burst on a loaded machine rarely hits twice, a quadratic cost always does."""
    failure = _series(run, make, size, noise_s)
    if failure is not None:
        failure = _series(run, make, size, noise_s)
    assert failure is None, failure
