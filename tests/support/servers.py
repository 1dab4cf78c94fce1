"""Ports and servers for tests: a free port that no other test process will pick, and an
ASGI application served by uvicorn from a background thread."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

# Ports are taken below Linux's ephemeral range (32768-60999), where the system never
# assigns one on its own (to an outgoing connection, or a bind to port 0), and each pytest
# process has a block of its own: xdist's worker gwN the N-th block, a run without xdist
# the first. Two workers never pick the same port; a port some other program holds is
# skipped, as the bind below fails.
_FIRST_PORT = 20000
_BLOCK = 1500
_BLOCKS = 8


def _block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % _BLOCKS if worker.isdigit() else 0
    start = _FIRST_PORT + index * _BLOCK
    return range(start, start + _BLOCK)


_PORTS = _block()
# A random start, so that two test runs side by side rarely walk the same ports.
_candidates = itertools.cycle([*_PORTS[(offset := random.randrange(_BLOCK)) :], *_PORTS[:offset]])


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, never given twice in a run."""
    for _ in range(_BLOCK):
        port = next(_candidates)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


@contextmanager
def serve_in_thread(app: ASGIApp, port: int, *, lifespan: str = "off") -> Iterator[uvicorn.Server]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 from a background thread."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
