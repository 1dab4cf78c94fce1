"""Every error is an RFC 9457 problem in French, with a stable code and the request id;
bad input never changes data and never becomes a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from plume.app import create_app
from plume.config import Settings
from plume.credentials.secrets import generate_key
from plume.models import Organization
from plume.web.transaction import DBSession
from tests.support.clients import running
from tests.support.database import UNREACHABLE_DATABASE
from tests.support.factories import Factory, Key, fresh_siren
from tests.support.problems import assert_openai_error, assert_problem, error_fields
from tests.support.settings import make_settings


async def count_organizations(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count()).select_from(Organization)) or 0)


def epci_payload(**changes: object) -> dict[str, object]:
    """A payload that would create an EPCI: each bad input below spoils one part of it."""
    payload: dict[str, object] = {"kind": "epci", "name": "CC de test", "siren": fresh_siren()}
    payload.update(changes)
    return payload


@pytest.fixture
async def operator_key(factory: Factory) -> Key:
    return await factory.operator_key()


# --- the problem shape -------------------------------------------------------------------


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    response = await client.get("/v1/no-such-thing")
    assert_problem(response, 404, "not_found")


async def test_wrong_method_is_a_405_problem(client: AsyncClient, operator_key: Key) -> None:
    response = await client.delete("/v1/organization", headers=operator_key.headers)
    assert_problem(response, 405, "method_not_allowed")
    response = await client.put("/v1/admin/organizations", headers=operator_key.headers, json={})
    assert_problem(response, 405, "method_not_allowed")


async def test_405_says_which_methods_are_allowed(client: AsyncClient) -> None:
    # RFC 9110 §15.5.6: a 405 must carry Allow; clients use it to correct themselves.
    response = await client.delete("/v1/admin/organizations")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
    assert {"GET", "POST"} <= allowed, response.headers


async def test_missing_key_is_a_401_problem_with_a_challenge(client: AsyncClient) -> None:
    response = await client.get("/v1/organization")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_unknown_key_is_a_401_problem(client: AsyncClient) -> None:
    response = await client.get(
        "/v1/organization", headers={"Authorization": f"Bearer {generate_key()}"}
    )
    assert_problem(response, 401, "unauthenticated")


async def test_wrong_role_is_a_403_problem(client: AsyncClient, factory: Factory) -> None:
    agent = await factory.key(await factory.commune(), "agent")
    response = await client.get("/v1/admin/organizations", headers=agent.headers)
    assert_problem(response, 403, "forbidden")


# --- validation: 422 naming each field -----------------------------------------------------


async def test_malformed_json_is_a_422(client: AsyncClient, operator_key: Key) -> None:
    response = await client.post(
        "/v1/admin/organizations",
        content=b'{"kind": "epci", "name": ',
        headers={**operator_key.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "invalid_request")


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        pytest.param({"name": 12}, {"name"}, id="number-for-string"),
        pytest.param({"name": 12, "siren": 200069524}, {"name", "siren"}, id="two-wrong-types"),
        pytest.param({"name": ["CC"]}, {"name"}, id="list-for-string"),
        pytest.param({"kind": "region"}, {"kind"}, id="unknown-kind"),
        pytest.param({"parent_id": "not-a-uuid"}, {"parent_id"}, id="bad-uuid"),
        pytest.param({"bogus": 1}, {"bogus"}, id="unknown-field"),
        pytest.param({"name": ""}, {"name"}, id="empty-name"),
        pytest.param({"name": "   "}, {"name"}, id="blank-name"),
        pytest.param({"name": "x" * 201}, {"name"}, id="name-too-long"),
        pytest.param({"policy": {"bogus": True}}, {"policy.bogus"}, id="unknown-policy-key"),
        pytest.param(
            {"name": "", "bogus": 1, "parent_id": 3},
            {"name", "bogus", "parent_id"},
            id="several-at-once",
        ),
    ],
)
async def test_invalid_fields_are_named(
    client: AsyncClient,
    operator_key: Key,
    db: AsyncSession,
    changes: dict[str, object],
    fields: set[str],
) -> None:
    before = await count_organizations(db)
    response = await client.post(
        "/v1/admin/organizations", json=epci_payload(**changes), headers=operator_key.headers
    )
    body = assert_problem(response, 422, "invalid_request")
    assert error_fields(body) == fields
    assert await count_organizations(db) == before


async def test_missing_required_fields_are_named(client: AsyncClient, operator_key: Key) -> None:
    response = await client.post("/v1/admin/organizations", json={}, headers=operator_key.headers)
    body = assert_problem(response, 422, "invalid_request")
    assert {"kind", "name"} <= error_fields(body)


async def test_patch_validation_names_fields(
    client: AsyncClient, operator_key: Key, factory: Factory
) -> None:
    commune = await factory.commune("Avant")
    response = await client.patch(
        f"/v1/admin/organizations/{commune.id}",
        json={"name": 3, "status": "closed", "colour": "blue"},
        headers=operator_key.headers,
    )
    body = assert_problem(response, 422, "invalid_request")
    assert error_fields(body) == {"name", "status", "colour"}
    read = await client.get(f"/v1/admin/organizations/{commune.id}", headers=operator_key.headers)
    assert read.json()["name"] == "Avant"
    assert read.json()["status"] == "active"


async def test_query_parameters_are_validated(client: AsyncClient, operator_key: Key) -> None:
    response = await client.get(
        "/v1/admin/organizations", params={"limit": "many"}, headers=operator_key.headers
    )
    body = assert_problem(response, 422, "invalid_request")
    assert error_fields(body) == {"limit"}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(None, None, id="form-encoded"),
        pytest.param(b"kind=epci", "text/plain", id="text-plain"),
        pytest.param(b"[]", "application/json", id="json-array"),
        pytest.param(b'"epci"', "application/json", id="json-string"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_a_422(
    client: AsyncClient,
    operator_key: Key,
    db: AsyncSession,
    content: bytes | None,
    content_type: str | None,
) -> None:
    before = await count_organizations(db)
    if content is None:
        response = await client.post(
            "/v1/admin/organizations",
            data={"kind": "epci", "name": "CC de test", "siren": fresh_siren()},
            headers=operator_key.headers,
        )
    else:
        assert content_type is not None
        response = await client.post(
            "/v1/admin/organizations",
            content=content,
            headers={**operator_key.headers, "Content-Type": content_type},
        )
    body = assert_problem(response, 422, "invalid_request")
    error_fields(body)
    assert await count_organizations(db) == before


async def test_the_same_payload_when_valid_does_create(
    client: AsyncClient, operator_key: Key, db: AsyncSession
) -> None:
    """Control for the tests above: the count does move when the input is good."""
    before = await count_organizations(db)
    response = await client.post(
        "/v1/admin/organizations", json=epci_payload(), headers=operator_key.headers
    )
    assert response.status_code == 201, response.text
    assert await count_organizations(db) == before + 1


# --- request ids ---------------------------------------------------------------------------


async def test_request_id_is_echoed_when_sent(client: AsyncClient) -> None:
    sent = "client-trace-42.a:b"
    response = await client.get("/v1/organization", headers={"X-Request-ID": sent})
    assert response.headers["x-request-id"] == sent
    assert assert_problem(response, 401, "unauthenticated")["request_id"] == sent
    ok = await client.get("/healthz", headers={"X-Request-ID": sent})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == sent


async def test_request_id_is_generated_otherwise(client: AsyncClient) -> None:
    first = await client.get("/v1/organization")
    second = await client.get("/v1/organization")
    ids = [assert_problem(r, 401, "unauthenticated")["request_id"] for r in (first, second)]
    assert all(len(i) >= 8 for i in ids)
    assert ids[0] != ids[1]
    ok = await client.get("/healthz")
    assert ok.headers["x-request-id"] not in ("", *ids)


# --- body size limit -----------------------------------------------------------------------

SMALL_LIMIT = 512


class TestBodyLimit:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        """Overrides the `settings` fixture: the `app` and `client` fixtures get a small limit."""
        return make_settings(database_url, max_body_bytes=SMALL_LIMIT)

    @staticmethod
    def oversized() -> bytes:
        # A valid creation padded past the limit with JSON whitespace: accepted, it would
        # create an EPCI.
        body = json.dumps({"kind": "epci", "name": "CC de test", "siren": fresh_siren()}).encode()
        return body + b" " * (SMALL_LIMIT + 100 - len(body))

    async def test_declared_length_over_the_limit_is_a_413(
        self, client: AsyncClient, operator_key: Key, db: AsyncSession
    ) -> None:
        before = await count_organizations(db)
        response = await client.post(
            "/v1/admin/organizations",
            content=self.oversized(),
            headers={**operator_key.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 413, "payload_too_large")
        assert await count_organizations(db) == before

    async def test_streamed_body_over_the_limit_is_a_413(
        self, client: AsyncClient, operator_key: Key, db: AsyncSession
    ) -> None:
        body = self.oversized()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 100):
                yield body[start : start + 100]

        before = await count_organizations(db)
        request = client.build_request(
            "POST",
            "/v1/admin/organizations",
            content=chunks(),
            headers={**operator_key.headers, "Content-Type": "application/json"},
        )
        assert "content-length" not in request.headers
        response = await client.send(request)
        assert_problem(response, 413, "payload_too_large")
        assert await count_organizations(db) == before

    async def test_a_body_under_the_limit_is_served(
        self, client: AsyncClient, operator_key: Key
    ) -> None:
        body = self.oversized()[: SMALL_LIMIT - 10]
        response = await client.post(
            "/v1/admin/organizations",
            content=body,
            headers={**operator_key.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 201, response.text


# --- unexpected errors ---------------------------------------------------------------------

LEAK = "database password is hunter2"


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    async def explode() -> None:
        raise RuntimeError(LEAK)

    async def bad_query(session: DBSession) -> None:
        await session.execute(text("SELECT * FROM table_that_does_not_exist_hunter2"))

    app.add_api_route("/v1/test-explode", explode, methods=["GET"])
    app.add_api_route("/v1/test-bad-query", bad_query, methods=["GET"])
    return app


async def test_an_unexpected_exception_is_a_generic_500(
    failing_app: FastAPI, client: AsyncClient
) -> None:
    response = await client.get("/v1/test-explode", headers={"X-Request-ID": "trace-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "trace-500"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_a_failing_query_is_a_500_not_a_503(
    failing_app: FastAPI, client: AsyncClient
) -> None:
    response = await client.get("/v1/test-bad-query")
    assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "SELECT" not in response.text
    # The service goes on answering afterwards.
    assert (await client.get("/healthz")).status_code == 200


# --- the database is down ------------------------------------------------------------------


@pytest.fixture
async def unreachable() -> AsyncIterator[AsyncClient]:
    async with running(create_app(make_settings(UNREACHABLE_DATABASE))) as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/v1/organization", None),
        ("GET", "/v1/admin/organizations", None),
        ("POST", "/v1/admin/organizations", {"kind": "epci", "name": "CC", "siren": "200069524"}),
        # A fixed identifier (no organisation has it): a random one would give the test
        # another id in each xdist worker, which then refuse to run it.
        (
            "PATCH",
            "/v1/admin/organizations/1938a0cc-01b4-41a3-baef-f0df58249c13",
            {"name": "Nouveau"},
        ),
        ("GET", "/v1/organization/api-keys", None),
    ],
)
async def test_unreachable_database_is_a_503(
    unreachable: AsyncClient, method: str, path: str, payload: dict[str, object] | None
) -> None:
    response = await unreachable.request(
        method,
        path,
        json=payload,
        headers={"Authorization": f"Bearer {generate_key()}", "X-Request-ID": "trace-503"},
    )
    body = assert_problem(response, 503, "unavailable")
    assert body["request_id"] == "trace-503"
    # Nothing of the driver's message (the database's address, the failure) reaches it.
    for leak in ("port 1", "plume_nowhere", "Connection refused", "connection failed", "psycopg"):
        assert leak not in response.text, leak


async def test_openai_integers_are_json_integers(client: AsyncClient, factory: Factory) -> None:
    agent = await factory.key(await factory.commune())
    for value in (True, "64", 64.5):
        response = await client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Bonjour"}], "max_tokens": value},
            headers=agent.headers,
        )
        error = assert_openai_error(response, 422, "invalid_request")
        assert error["param"] == "max_tokens", error


async def test_a_nul_character_is_refused_before_anything_is_stored(
    client: AsyncClient, factory: Factory
) -> None:
    # PostgreSQL text cannot hold NUL: without this check the write would fail with a 500,
    # after the provider had been paid, and the database error would quote the texts.
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    for path, body in (
        ("/v1/organization/api-keys", {"name": "clé\u0000", "role": "agent"}),
        ("/v1/drafts", {"kind": "bulletin_article", "subject": "x\u0000", "key_points": ["a"]}),
    ):
        response = await client.post(path, json=body, headers=admin.headers)
        problem = assert_problem(response, 422, "invalid_request")
        assert problem["errors"][0]["field"] == "body"
    listed = await client.get("/v1/organization/api-keys", headers=admin.headers)
    assert [k["name"] for k in listed.json()["items"]] == ["test tenant_admin"]
