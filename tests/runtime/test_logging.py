"""Logs keep an exception's type and where it happened, never the user's values its message
may quote: a unique violation's DETAIL, a value PostgreSQL refused, pydantic's input."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.runtime.log import configure_logging

MARKER = "Zorglub-7f3a-marqueur"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """What the configured logging writes, as a process would write it to standard error."""
    configure_logging("INFO")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(sys.stderr)
        configure_logging("WARNING")


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_a_unique_violation_is_logged_without_its_detail(
    db: AsyncSession, logs: io.StringIO
) -> None:
    await db.execute(
        text("CREATE TEMPORARY TABLE marked (value text CONSTRAINT marked_one UNIQUE)")
    )
    await db.execute(text("INSERT INTO marked VALUES (:v)"), {"v": MARKER})
    with pytest.raises(IntegrityError) as raised:
        await db.execute(text("INSERT INTO marked VALUES (:v)"), {"v": MARKER})
    # The driver's message does hold the value: DETAIL: Key (value)=(…) already exists.
    assert MARKER in str(raised.value.orig)
    try:
        raise raised.value
    except IntegrityError:
        structlog.get_logger("plume.test").exception("settlement_failed")

    [entry] = records(logs)
    assert MARKER not in logs.getvalue()
    exception = entry["exception"]
    # What an operator needs is still there: the types, the constraint, where it happened.
    assert "sqlalchemy.exc.IntegrityError" in exception
    assert "psycopg.errors.UniqueViolation: SQLSTATE 23505 (constraint marked_one)" in exception
    assert "test_logging.py" in exception
    assert entry["event"] == "settlement_failed"


async def test_a_refused_value_is_not_logged(db: AsyncSession, logs: io.StringIO) -> None:
    with pytest.raises(DataError) as raised:
        await db.execute(text("SELECT CAST(:v AS uuid)"), {"v": MARKER})
    assert MARKER in str(raised.value.orig)
    try:
        raise raised.value
    except DataError:
        structlog.get_logger("plume.test").exception("query_failed")
    assert MARKER not in logs.getvalue()
    assert "psycopg.errors.InvalidTextRepresentation: SQLSTATE 22P02" in logs.getvalue()


class _Vote(BaseModel):
    present: int


def test_validation_input_is_not_logged_even_by_other_libraries(logs: io.StringIO) -> None:
    try:
        _Vote(present=MARKER)  # type: ignore[arg-type]
    except ValueError:
        # A library's own logger (uvicorn's "Exception in ASGI application" is one).
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    [entry] = records(logs)
    assert MARKER not in logs.getvalue()
    assert (
        "ValidationError: 1 validation error(s) [input redacted]: present: int_parsing"
        in (entry["exception"])
    )


def test_other_exceptions_keep_their_message(logs: io.StringIO) -> None:
    try:
        {}["colonne"]
    except KeyError:
        structlog.get_logger("plume.test").exception("bug")
    assert "KeyError: 'colonne'" in records(logs)[0]["exception"]
