"""Cursor pagination shared by every list: newest first, opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from plume.errors import invalid_field

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: tuple[datetime, uuid.UUID] | None


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, item_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), uuid.UUID(item_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise invalid_field(
            "cursor", "Curseur inconnu ; reprenez la valeur « next_cursor » d'une réponse."
        ) from None


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (max 200)")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, after=_decode_cursor(cursor) if cursor else None)


PageParams = Annotated[PageRequest, Depends(page_request)]


def paginate(
    statement: S,
    page: PageRequest,
    created_at: InstrumentedAttribute[datetime],
    item_id: InstrumentedAttribute[uuid.UUID],
) -> S:
    """Order newest first and fetch one extra row to know whether a next page exists."""
    if page.after is not None:
        statement = statement.where(tuple_(created_at, item_id) < tuple_(*page.after))
    return statement.order_by(created_at.desc(), item_id.desc()).limit(page.limit + 1)


def next_cursor(
    rows: list[T], page: PageRequest, key: Callable[[T], tuple[datetime, uuid.UUID]]
) -> tuple[list[T], str | None]:
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    created_at, item_id = key(rows[-1])
    return rows, encode_cursor(created_at, item_id)
