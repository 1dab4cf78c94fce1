"""What the OAuth2 client tests share: creating a client, asking for a token, and a `Key`
whose secret is an access token (so that the drafting helpers take it as they take a key).
Named apart from the agents' sign-in helpers, which share this directory."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response

from plume.models import ApiKeyRole, Organization
from tests.support.factories import Key

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Client:
    id: str
    client_id: str
    secret: str
    organization: Organization
    role: ApiKeyRole


async def create_client(
    http: AsyncClient, admin: Key, role: str = "agent", name: str = "Logiciel métier", **params: Any
) -> Client:
    response = await http.post(
        "/v1/organization/oauth-clients",
        json={"name": name, "role": role},
        headers=admin.headers,
        params=params,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return Client(
        created["id"],
        created["client_id"],
        created["client_secret"],
        admin.organization,
        ApiKeyRole(role),
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def token_response(
    http: AsyncClient, client: Client, method: str = "basic", **form: str
) -> Response:
    data = {"grant_type": "client_credentials", **form}
    headers = dict(FORM)
    if method == "basic":
        headers.update(basic(client.client_id, client.secret))
    else:
        data.update(client_id=client.client_id, client_secret=client.secret)
    return await http.post("/oauth/token", data=data, headers=headers)


async def access_token(http: AsyncClient, client: Client, method: str = "basic") -> str:
    response = await token_response(http, client, method)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def as_key(http: AsyncClient, client: Client) -> Key:
    """The client, with a fresh access token, as the helpers' `Key`."""
    return Key(client.id, await access_token(http, client), client.organization, client.role)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A token's header and claims, read without checking anything."""
    header, claims, _ = token.split(".")
    padded = [part + "=" * (-len(part) % 4) for part in (header, claims)]
    decoded = [json.loads(base64.urlsafe_b64decode(part)) for part in padded]
    return decoded[0], decoded[1]


def assert_oauth_error(response: Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert body["error_description"].isascii()
    return body
