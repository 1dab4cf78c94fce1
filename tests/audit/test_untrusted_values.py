"""What callers send and the trail keeps for ever: a refused path's parameters are bounded,
and the CSV export does not hand a spreadsheet a formula."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.audit.helpers import body, entries
from tests.support.factories import Factory


async def test_a_refusal_keeps_the_route_template_and_bounded_parameters(
    client: AsyncClient, factory: Factory, db: AsyncSession
) -> None:
    commune = await factory.commune()
    agent = await factory.key(commune)
    long = "A" * 4000
    refused = await client.get(f"/v1/admin/organizations/{long}", headers=agent.headers)
    assert refused.status_code == 403
    short = str(uuid.uuid4())
    assert (await client.get(f"/v1/drafts/{short}", headers=agent.headers)).status_code == 404

    first, second = (body(e) for e in await entries(db, commune))
    assert first["target"] == {
        "type": "route",
        "id": "GET /v1/admin/organizations/{organization_id}",
    }
    # 4,000 characters of the caller's become their digest: 64 hex digits and a size.
    assert first["details"]["path_params"] == {
        "organization_id": {"sha256": hashlib.sha256(long.encode()).hexdigest(), "bytes": 4000}
    }
    assert long not in str(first)
    # A parameter of a sane length is kept as it is, to be read.
    assert second["details"]["path_params"] == {"draft_id": short}


async def test_the_csv_export_neutralises_cells_that_look_like_formulas(
    client: AsyncClient, factory: Factory
) -> None:
    commune = await factory.commune()
    admin = await factory.key(commune, "tenant_admin")
    # A request id may start with "-": Excel would compute "-2-3" as -5.
    missing = await client.get(
        f"/v1/drafts/{uuid.uuid4()}", headers={**admin.headers, "X-Request-ID": "-2-3"}
    )
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "-2-3"

    export = await client.get("/v1/audit/export?format=csv", headers=admin.headers)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    [denied] = [row for row in rows if row["action"] == "access.denied"]
    assert denied["request_id"] == "'-2-3"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # The JSON lines export, which verification reads, keeps the entry exactly.
    lines = await client.get("/v1/audit/export?format=jsonl", headers=admin.headers)
    kept = [json.loads(json.loads(line)["body"]) for line in lines.text.splitlines()]
    assert [entry["request_id"] for entry in kept] == ["-2-3"]
