"""Report dates far outside any real use are a 422 naming the field, never a 500 (Python's
calendar ends at 9999-12-31, and 0001-01-01 has no midnight in Paris in UTC)."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.support.factories import Factory
from tests.support.problems import assert_problem

ROUTES = [
    ("/v1/usage", "tenant_admin"),
    ("/v1/admin/usage", "operator_admin"),
    ("/v1/audit", "tenant_admin"),
]


@pytest.mark.parametrize(("path", "role"), ROUTES)
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=0001-01-01&to=0001-01-01", "from"),
        ("from=0001-01-01", "from"),
        ("to=9999-12-31", "to"),
        ("from=2026-01-01&to=9999-12-31", "to"),
        ("from=1999-12-31", "from"),
        ("to=2101-01-01", "to"),
    ],
)
async def test_dates_out_of_range_are_named(
    client: AsyncClient, factory: Factory, path: str, role: str, query: str, field: str
) -> None:
    if role == "operator_admin":
        key = await factory.operator_key()
    else:
        key = await factory.key(await factory.commune(), role)
    response = await client.get(f"{path}?{query}", headers=key.headers)
    body = assert_problem(response, 422, "invalid_request", field=field)
    assert "2000" in body["errors"][0]["message"]


@pytest.mark.parametrize(("path", "role"), ROUTES)
async def test_the_range_ends_are_accepted(
    client: AsyncClient, factory: Factory, path: str, role: str
) -> None:
    if role == "operator_admin":
        key = await factory.operator_key()
    else:
        key = await factory.key(await factory.commune(), role)
    response = await client.get(f"{path}?from=2000-01-01&to=2100-12-31", headers=key.headers)
    assert response.status_code == 200, response.text
