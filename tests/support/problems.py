"""Plume's two error shapes, checked whole: RFC 9457 problem details on its own routes, and
OpenAI's error object on the OpenAI-compatible ones."""

from __future__ import annotations

from typing import Any

from httpx import Response

from tests.support.french import looks_french

PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail", "code", "request_id"})

# What FastAPI, Starlette and Pydantic say in English when an error escapes untranslated.
ENGLISH = (
    "Field required",
    "Input should",
    "Extra inputs",
    "Not Found",
    "Method Not Allowed",
    "Internal Server Error",
    "There was an error",
    "Request Entity",
    "Content Too Large",
    "Traceback",
    "value is not",
)


def assert_problem(
    response: Response, status: int, code: str, *, field: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with the contract's fields, in French, carrying the request id.

    The status and `application/problem+json`; the keys type, title, status, detail, code
    and request_id, the first three non-empty text; `status` and `code` as expected; a French
    detail, and French messages for the fields named in `errors`, none of them an untranslated
    framework message; the request id of the X-Request-ID header; a Bearer challenge on a
    401. With `field`, `errors` names that field.
    """
    assert response.status_code == status, response.text
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status, body
    assert body["code"] == code, body
    for name in ("type", "title", "detail"):
        assert isinstance(body[name], str), body
        assert body[name].strip(), body
    assert looks_french(body["detail"]), body["detail"]
    assert body["request_id"], body
    assert body["request_id"] == response.headers["x-request-id"], body
    texts = [body["detail"]]
    for error in body.get("errors") or []:
        assert set(error) >= {"field", "message"}, error
        assert isinstance(error["message"], str), error
        assert error["message"].strip(), error
        assert looks_french(error["message"]), error
        texts.append(error["message"])
    for phrase in ENGLISH:
        assert all(phrase.lower() not in text.lower() for text in texts), (phrase, body)
    if status == 401:
        assert response.headers["www-authenticate"].lower().startswith("bearer"), response.headers
    if field is not None:
        assert field in {error["field"] for error in body.get("errors") or []}, body
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    """The fields a problem's non-empty `errors` names."""
    errors = body.get("errors")
    assert isinstance(errors, list), body
    assert errors, body
    for error in errors:
        assert set(error) >= {"field", "message"}, error
        assert isinstance(error["message"], str), error
        assert error["message"].strip(), error
    return {error["field"] for error in errors}


def invalid_fields(response: Response) -> set[str]:
    """The fields a 422 `invalid_request` problem names."""
    return error_fields(assert_problem(response, 422, "invalid_request"))


def assert_openai_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error shape (not problem+json), with Plume's code and a French message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code"} <= set(error), error
    assert error["code"] == code, error
    assert isinstance(error["type"], str)
    assert error["type"]
    assert isinstance(error["message"], str)
    assert looks_french(error["message"]), error["message"]
    for name in ("status", "title", "detail", "request_id"):
        assert name not in body
    return error
