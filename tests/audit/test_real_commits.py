"""The audit chain on real commits: fifty concurrent actions, and docs/audit.md's script and
the command line verifying a chain."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response

from plume.app import create_app
from plume.audit import chain
from plume.db import create_engine, create_session_factory
from tests.audit.helpers import body, entries, tamper
from tests.support.clients import client_for
from tests.support.factories import Factory
from tests.support.processes import PLUME
from tests.support.settings import TEST_SECRET, make_settings

# --------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------


@pytest.fixture
async def committed_client(committed_database_url: str) -> AsyncIterator[tuple[AsyncClient, Any]]:
    engine = create_engine(committed_database_url, pool_size=10)
    app = create_app(make_settings(committed_database_url), engine=engine)
    try:
        async with client_for(app) as http:
            yield http, create_session_factory(engine)
    finally:
        await engine.dispose()


async def test_fifty_concurrent_actions_leave_a_consistent_chain(
    committed_client: tuple[AsyncClient, Any],
) -> None:
    client, sessions = committed_client
    async with sessions() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        commune = await factory.commune("Commune très active")
        admin = await factory.key(commune, "tenant_admin")

    async def mint(index: int) -> Response:
        return await client.post(
            "/v1/organization/api-keys",
            json={"name": f"poste {index}", "role": "agent"},
            headers=admin.headers,
        )

    answers = await asyncio.gather(*(mint(i) for i in range(50)))
    assert [a.status_code for a in answers] == [201] * 50
    async with sessions() as session:
        rows = await entries(session, commune)
        assert [r.seq for r in rows] == list(range(1, 51))
        result = await chain.verify(session, commune.id)
    assert (result.valid, result.checked) == (True, 50)
    names = {body(r)["details"]["name"] for r in rows}
    assert names == {f"poste {i}" for i in range(50)}


# --------------------------------------------------------------------------------------
# docs/audit.md's script, and the command line
# --------------------------------------------------------------------------------------


DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def documented_script() -> str:
    text_ = DOCS.read_text(encoding="utf-8")
    start = text_.index("```python\n", text_.index("On your own")) + len("```python\n")
    return text_[start : text_.index("```", start)]


async def run(*command: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


# Slow lane: runs a Python script and `plume` as subprocesses.
@pytest.mark.slow
async def test_the_documented_script_and_the_command_line_verify_a_chain(
    committed_client: tuple[AsyncClient, Any], committed_database_url: str, tmp_path: Path
) -> None:
    client, sessions = committed_client
    async with sessions() as session, session.begin():
        factory = Factory(session, TEST_SECRET)
        commune = await factory.commune("Commune vérifiée")
        admin = await factory.key(commune, "tenant_admin")
    for index in range(3):
        response = await client.post(
            "/v1/organization/api-keys",
            json={"name": f"poste {index} — accueil", "role": "agent"},
            headers=admin.headers,
        )
        assert response.status_code == 201
    exported = await client.get("/v1/audit/export", headers=admin.headers)
    export_file = tmp_path / "audit.jsonl"
    export_file.write_bytes(exported.content)
    script = tmp_path / "verify.py"
    script.write_text(documented_script(), encoding="utf-8")

    status, out, _ = await run(sys.executable, str(script), str(export_file))
    assert status == 0, out
    assert out.startswith("valid: 3 entries")

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLUME_")},
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_ENV": "test",
    }
    status, out, err = await run(PLUME, "audit", "verify", "--organization", commune.slug, env=env)
    assert status == 0, err
    assert out.strip() == f"{commune.slug}\tvalid\t3 entries"

    forged = exported.text.replace("poste 1", "poste 9")
    export_file.write_text(forged, encoding="utf-8")
    status, out, _ = await run(sys.executable, str(script), str(export_file))
    assert (status, "invalid at entry 2" in out + _) == (1, True)

    async with sessions() as session, session.begin():
        await tamper(
            session,
            "UPDATE audit_entries SET body = replace(body, 'poste 2', 'poste 8')"
            " WHERE organization_id = :o",
            o=commune.id,
        )
    status, out, err = await run(PLUME, "audit", "verify", "--organization", commune.slug, env=env)
    assert status == 1
    assert f"{commune.slug}\tINVALID\tfirst invalid entry: 3" in out
    assert "does not verify" in err
