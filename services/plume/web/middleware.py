"""ASGI middleware: request id, body size limit, access log and the last-resort 500."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plume.errors import (
    FieldError,
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    PlumeError,
    problem_classes,
    render_error,
)
from plume.metrics.registry import HTTP_DURATION, REFUSALS

logger = structlog.get_logger("plume.http")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# The `method` label: a client may send any token as a method (h11 accepts them all), and
# each would be a new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class NulInBody(Exception):
    """The body holds a NUL character, which no text field may contain."""


class BodyTooLarge(Exception):
    """Raised from `receive` when the streamed body passes the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _count_refusal(state: dict[str, Any], status: int, code: str | None) -> None:
    """An error answer, counted for the caller's organisation (the principal authentication
    left in the request's state) with its problem code, from the fixed set of codes."""
    principal = state.get("principal")
    organization = getattr(getattr(principal, "organization", None), "slug", None)
    if code not in problem_classes():
        code = "other"
    REFUSALS.labels(organization or "anonymous", str(status), code).inc()


def _limit_message(limit: int) -> str:
    mib = limit / (1024 * 1024)
    size = f"{mib:g} Mio" if mib >= 1 else f"{limit} octets"
    return f"Le corps de la requête dépasse la taille autorisée ({size})."


class RequestContextMiddleware:
    """Outermost layer of the application (inside Starlette's own error middleware)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        large_body_paths: dict[str, int],
        upload_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.large_body_paths = large_body_paths
        # Pages whose multipart forms carry files (PDF, DOCX: NUL bytes by nature); their
        # text fields are checked for NUL by the page itself.
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        client_id = _header(scope, b"x-request-id")
        request_id = (
            client_id if client_id and _CLIENT_REQUEST_ID.match(client_id) else uuid.uuid4().hex
        )
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500, "started": False}
        limit = self.large_body_paths.get(scope["path"], self.max_body_bytes)
        binary = scope["path"] in self.upload_paths and (
            _header(scope, b"content-type") or ""
        ).startswith("multipart/form-data")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        received = 0
        tail = [b""]  # the end of the previous chunk, for an escape split across chunks

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                state["body_bytes"] = received
                if received > limit:
                    raise BodyTooLarge(limit)
                if binary:
                    return message
                # PostgreSQL text cannot hold NUL: refuse it here, as a bad request.
                window = tail[0] + body
                if b"\\u0000" in window or b"\x00" in window:
                    raise NulInBody()
                tail[0] = window[-6:]
            return message

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            await self.app(scope, limited_receive, send_with_id)
        except NulInBody:
            message = "Le texte envoyé contient un caractère nul (\\u0000), qui n'est pas admis."
            await self._send_problem(
                InvalidRequest(message, errors=[FieldError(field="body", message=message)]),
                request_id,
                scope["path"],
                send_with_id,
                status_holder,
            )
        except BodyTooLarge as exc:
            await self._send_problem(
                PayloadTooLarge(_limit_message(exc.limit)),
                request_id,
                scope["path"],
                send_with_id,
                status_holder,
            )
        except Exception:
            logger.exception("unhandled_error", path=scope["path"], method=scope["method"])
            await self._send_problem(
                InternalError(), request_id, scope["path"], send_with_id, status_holder
            )
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            HTTP_DURATION.labels(template, method, str(status_holder["status"])).observe(elapsed)
            if status_holder["status"] >= 400:
                code = status_holder.get("code") or state.get("problem_code")
                _count_refusal(state, status_holder["status"], code)
            logger.info(
                "request",
                method=method,
                route=template,
                status=status_holder["status"],
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    @staticmethod
    async def _send_problem(
        error: PlumeError,
        request_id: str,
        path: str,
        send: Send,
        status_holder: dict[str, Any],
    ) -> None:
        if status_holder["started"]:
            # Too late for a clean answer: the client sees a cut response.
            return
        status_holder["code"] = error.code
        payload, media_type = render_error(error, request_id, path)
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        if isinstance(error, PayloadTooLarge):
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
