"""Memory a worker freed, given back to the system.

Loading pseudonymisation's model allocates and frees tens of megabytes of temporaries (its
weights read and copied); glibc's allocator keeps most of those pages for later instead of
returning them, and the worker's resident memory stays that much higher for its whole life.
`malloc_trim(0)` returns the free pages at once (measured: 12 MB of a worker's PSS after the
model's load, 6 MB more at the end of start-up; docs/performance.md). A no-op where the C
library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the system; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def keep_for_life() -> None:
    """Leave what the process holds now out of the cyclic collector's full passes.

    A worker holds about 350,000 objects that live as long as it does (LiteLLM, the
    application; pseudonymisation's model once loaded); every full pass walked them all:
    185-230 ms with every request of the worker on hold, several times a minute under load,
    one at the start of a long synthèse's parts (docs/performance.md, the eleventh cut).
    Frozen (`gc.freeze`), they are skipped: a pass walks what requests allocated since.
    Collected first, so that no garbage is frozen. For served processes only: in a test
    process it would keep every test's cycles alive.
    """
    gc.collect()
    gc.freeze()
