"""The OpenAPI description tells the truth: every operation lists the errors it may answer,
in the shape and content type it answers them, and the content types of its streams and
files; a problem's `type` leads to a French page about its code."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from plume.errors import DEFAULT_PUBLIC_URL, PROBLEM_JSON, problem_classes, set_public_url
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory
from tests.support.french import looks_french
from tests.support.problems import assert_problem
from tests.support.settings import make_settings

OPENAI = {"/v1/chat/completions", "/v1/models"}
# The OAuth2 token endpoint answers RFC 6749's errors for the client's mistakes.
OAUTH_ERRORS = {("/oauth/token", "400"), ("/oauth/token", "401")}


@pytest.fixture
async def description(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(description: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in description["paths"].items()
        for method, operation in methods.items()
    ]


def statuses(description: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(s) for s in description["paths"][path][method.lower()]["responses"]}


def media_types(description: dict[str, Any], method: str, path: str, status: int) -> set[str]:
    response = description["paths"][path][method.lower()]["responses"][str(status)]
    return set(response.get("content", {}))


def test_every_error_is_a_problem_or_an_openai_error(description: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(description)
    assert "ValidationError" not in description["components"]["schemas"]
    for method, path, operation in operations(description):
        errors = {s: r for s, r in operation["responses"].items() if int(s) >= 400}
        assert "500" in errors, (method, path)
        for status, response in errors.items():
            if path == "/readyz" and status == "503":
                continue  # the probe's own JSON
            content = response["content"]
            if (path, status) in OAUTH_ERRORS:
                assert content == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}
                }, (method, path, status)
            elif path in OPENAI:
                assert content == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/OpenAIError"}}
                }, (method, path, status)
            else:
                assert content == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
            # The description names the codes that status may carry.
            assert "`" in response["description"], (method, path, status)


def test_the_problem_schema_is_the_contract(description: dict[str, Any]) -> None:
    problem = description["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "request_id"}
    assert set(problem["properties"]["code"]["enum"]) == set(problem_classes())
    field_error = description["components"]["schemas"]["ProblemFieldError"]
    assert set(field_error["required"]) == {"field", "message"}
    error = description["components"]["schemas"]["OpenAIError"]["properties"]["error"]
    assert set(error["required"]) == {"message", "type", "code", "param"}


@pytest.mark.parametrize(
    ("method", "path", "expected", "absent"),
    [
        # No key, no database: only a bug can fail it.
        ("GET", "/healthz", {200, 500}, {401, 403, 503}),
        ("GET", "/metrics", {200, 401, 500}, {403, 503}),
        # Any key: 401, 403 (suspended), the database (503); a path id is 404.
        ("GET", "/v1/organization", {200, 401, 403, 500, 503}, {404, 422, 429}),
        ("GET", "/v1/drafts/{draft_id}", {200, 401, 403, 404, 422, 500, 503}, {409, 429}),
        ("POST", "/v1/drafts/{draft_id}/review", {200, 404, 409, 413, 422}, {429, 502}),
        # A provider call: policy, model group, idempotency, quotas, the provider.
        ("POST", "/v1/drafts", {201, 202, 403, 404, 409, 413, 422, 429, 502, 503}, set()),
        ("POST", "/v1/chat/completions", {200, 403, 404, 409, 413, 422, 429, 502, 503}, set()),
        # The model list needs a key but calls no provider.
        ("GET", "/v1/models", {200, 401, 403, 500, 503}, {404, 429, 502}),
        # Admin routes refuse other roles (403); an unknown commune of an EPCI is 404.
        ("GET", "/v1/admin/organizations", {200, 401, 403, 422, 503}, {404, 429}),
        ("POST", "/v1/admin/organizations", {201, 403, 409, 413, 422}, {404, 429}),
        ("PUT", "/v1/quotas", {200, 403, 404, 413, 422}, {429}),
        # The operator's defaults: no path id, so no 404; a body (413, 422) only to set them.
        ("GET", "/v1/admin/default-quotas", {200, 401, 403, 500, 503}, {404, 413, 422, 429}),
        ("PUT", "/v1/admin/default-quotas", {200, 401, 403, 413, 422, 503}, {404, 429}),
        ("DELETE", "/v1/organization/api-keys/{api_key_id}", {204, 401, 403, 404, 422}, {413}),
        ("DELETE", "/v1/organization/oauth-clients/{oauth_client_id}", {204, 401, 403, 404}, {413}),
        ("GET", "/v1/me", {200, 401, 403, 500, 503}, {404, 413}),
        # The token endpoint: RFC 6749's 400 and 401, no key (no 403).
        ("POST", "/oauth/token", {200, 400, 401, 413, 500, 503}, {403, 404}),
        ("GET", "/oauth/jwks.json", {200, 500}, {401, 403}),
    ],
)
def test_the_statuses_a_route_may_answer(
    description: dict[str, Any], method: str, path: str, expected: set[int], absent: set[int]
) -> None:
    documented = statuses(description, method, path)
    assert expected <= documented, documented
    assert not absent & documented, documented


def test_role_refusals_are_named_where_a_role_is_required(description: dict[str, Any]) -> None:
    responses = description["paths"]["/v1/admin/usage"]["get"]["responses"]
    assert "`forbidden`" in responses["403"]["description"]
    assert "`organization_suspended`" in responses["403"]["description"]
    mine = description["paths"]["/v1/organization"]["get"]["responses"]
    assert "`forbidden`" not in mine["403"]["description"]
    chat = description["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "`quota_exceeded`" in chat["429"]["description"]
    assert "`rate_limited`" in chat["429"]["description"]


def test_errors_document_their_headers(description: dict[str, Any]) -> None:
    responses = description["paths"]["/v1/drafts"]["post"]["responses"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]
    for _, _, operation in operations(description):
        for response in operation["responses"].values():
            assert "X-Request-ID" in response["headers"]


def test_streams_and_files_have_their_real_content_types(description: dict[str, Any]) -> None:
    assert media_types(description, "POST", "/v1/drafts", 200) == {"text/event-stream"}
    assert media_types(description, "POST", "/v1/chat/completions", 200) == {
        "application/json",
        "text/event-stream",
    }
    assert media_types(description, "GET", "/v1/drafts/{draft_id}/export", 200) == {
        "text/markdown",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
    }
    assert media_types(description, "GET", "/v1/audit/export", 200) == {
        "application/x-ndjson",
        "text/csv",
    }
    for path in ("/v1/usage", "/v1/admin/usage"):
        assert media_types(description, "GET", path, 200) == {"application/json", "text/csv"}
    assert media_types(description, "GET", "/metrics", 200) == {"text/plain"}


async def test_the_type_of_a_real_problem_resolves_to_a_french_page(client: AsyncClient) -> None:
    problem = assert_problem(await client.get("/v1/drafts"), 401, "unauthenticated")
    assert problem["type"] == f"{DEFAULT_PUBLIC_URL}/problems/unauthenticated"
    page = await client.get(problem["type"].removeprefix(DEFAULT_PUBLIC_URL))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in page.text
    assert problem["title"] in page.text
    assert "Authorization: Bearer" in page.text  # what to do about it


@pytest.mark.parametrize("code", sorted(problem_classes()))
async def test_every_code_has_a_page(client: AsyncClient, code: str) -> None:
    page = await client.get(f"/problems/{code}")
    assert page.status_code == 200
    error = problem_classes()[code]
    assert f"statut HTTP {error.status}" in page.text
    assert looks_french(error.advice)


async def test_the_index_lists_every_code_and_an_unknown_code_is_a_404(
    client: AsyncClient,
) -> None:
    index = await client.get("/problems")
    assert index.status_code == 200
    for code in problem_classes():
        assert f'href="/problems/{code}"' in index.text
    assert_problem(await client.get("/problems/no_such_code"), 404, "not_found")
    assert_problem(await client.get("/problems/<script>"), 404, "not_found")


async def test_problem_types_point_at_the_public_url(
    make_app: AppFactory, factory: Factory
) -> None:
    settings = make_settings(make_app.settings.database_url, public_url="https://plume.example.fr/")
    try:
        async with client_for(make_app(settings=settings)) as http:
            problem = assert_problem(await http.get("/v1/organization"), 401, "unauthenticated")
    finally:
        set_public_url(DEFAULT_PUBLIC_URL)
    assert problem["type"] == "https://plume.example.fr/problems/unauthenticated"


async def test_the_pages_are_out_of_the_description(description: dict[str, Any]) -> None:
    assert not [path for path in description["paths"] if path.startswith(("/problems", "/docs"))]


def test_the_token_endpoint_documents_its_form_and_rfc_6749_errors(
    description: dict[str, Any],
) -> None:
    operation = description["paths"]["/oauth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    error = description["components"]["schemas"]["OAuthError"]
    assert set(error["required"]) == {"error", "error_description"}
