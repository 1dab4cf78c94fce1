"""The `plume` command as operators run it: bootstrap, organisations and keys, one-line
errors, migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.runtime.helpers import Result, live, plume, the_key
from tests.support.clients import bearer
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.settings import TEST_SECRET

# Slow lane: each test runs `plume` as a subprocess.
pytestmark = pytest.mark.slow


async def test_bootstrap_prints_an_operator_admin_key(
    bootstrapped: Result, cli_env: dict[str, str], cli_cwd: Path, committed_database_url: str
) -> None:
    first = the_key(bootstrapped)
    # Run again: the operator exists already; a new key is minted for it.
    second = the_key(await plume("bootstrap", env=cli_env, cwd=cli_cwd))
    assert second != first
    async with live(committed_database_url) as http:
        operators = set()
        for key in (first, second):
            own = await http.get("/v1/organization", headers=bearer(key))
            assert own.status_code == 200, own.text
            assert own.json()["kind"] == "operator"
            assert own.json()["slug"] == "operator"
            operators.add(own.json()["id"])
            admin = await http.get("/v1/admin/organizations?limit=1", headers=bearer(key))
            assert admin.status_code == 200, admin.text
        assert len(operators) == 1


async def test_operator_tasks_from_the_command_line(
    bootstrapped: Result, cli_env: dict[str, str], cli_cwd: Path, committed_database_url: str
) -> None:
    operator = the_key(bootstrapped)
    siren, insee = fresh_siren(), fresh_insee()

    epci = await plume(
        "orgs create --kind epci --name", "CC test CLI", "--siren", siren, env=cli_env, cwd=cli_cwd
    )
    assert epci.returncode == 0, epci.stderr
    assert len(epci.out_lines) == 1
    assert siren in epci.stdout
    commune = await plume(
        f"orgs create --kind commune --insee-code {insee} --parent {siren} --name",
        "Commune CLI",
        env=cli_env,
        cwd=cli_cwd,
    )
    assert commune.returncode == 0, commune.stderr
    assert len(commune.out_lines) == 1
    assert insee in commune.stdout

    agent = the_key(
        await plume(
            "keys create --role agent --name x --organization", insee, env=cli_env, cwd=cli_cwd
        )
    )

    async with live(committed_database_url) as http:
        own = await http.get("/v1/organization", headers=bearer(agent))
        assert own.status_code == 200, own.text
        assert (own.json()["kind"], own.json()["slug"]) == ("commune", insee)
        commune_id, epci_id = own.json()["id"], own.json()["parent_id"]
        parent = await http.get(f"/v1/admin/organizations/{epci_id}", headers=bearer(operator))
        assert parent.status_code == 200, parent.text
        assert (parent.json()["kind"], parent.json()["slug"]) == ("epci", siren)
        keys = await http.get(
            f"/v1/admin/organizations/{commune_id}/api-keys", headers=bearer(operator)
        )
        assert keys.status_code == 200, keys.text
        [listed] = keys.json()["items"]
        assert listed["role"] == "agent"
        assert listed["name"] == "x"
        assert agent.startswith(listed["prefix"])

        revoked, admin = await asyncio.gather(
            plume("keys revoke", listed["id"], env=cli_env, cwd=cli_cwd),
            # --organization also takes an id.
            plume(
                "keys create --role tenant_admin --name admin --organization",
                epci_id,
                env=cli_env,
                cwd=cli_cwd,
            ),
        )
        assert revoked.returncode == 0, revoked.stderr
        refused = await http.get("/v1/organization", headers=bearer(agent))
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthenticated"

        epci_admin = await http.get("/v1/organization", headers=bearer(the_key(admin)))
        assert epci_admin.status_code == 200, epci_admin.text
        assert epci_admin.json()["id"] == epci_id


async def test_command_errors_are_one_line_on_stderr(
    cli_env: dict[str, str], cli_cwd: Path
) -> None:
    no_database = {**cli_env}
    del no_database["PLUME_DATABASE_URL"]
    production = {**cli_env, "PLUME_ENV": "production"}
    del production["PLUME_SECRET_KEY"]
    demo_in_production = {**cli_env, "PLUME_ENV": "production", "PLUME_METRICS_PORT": "9464"}
    unknown = fresh_insee()
    new_key = "keys create --role agent --name x --organization"

    bad_insee, missing_url, missing_secret, unknown_org, bad_key_id, demo = await asyncio.gather(
        plume("orgs create --kind commune --name X --insee-code 123", env=cli_env, cwd=cli_cwd),
        plume("orgs list", env=no_database, cwd=cli_cwd),
        plume(new_key, "operator", env=production, cwd=cli_cwd),
        plume(new_key, unknown, env=cli_env, cwd=cli_cwd),
        plume("keys revoke not-a-key-id", env=cli_env, cwd=cli_cwd),
        # The demo revokes keys by name and prints fresh ones: never against production.
        plume("demo", env=demo_in_production, cwd=cli_cwd),
    )
    for result, names in [
        (bad_insee, "insee"),
        (missing_url, "PLUME_DATABASE_URL"),
        (missing_secret, "PLUME_SECRET_KEY"),
        (unknown_org, unknown),
        (bad_key_id, "not-a-key-id"),
        (demo, "PLUME_ENV"),
    ]:
        assert result.returncode != 0, result
        assert result.stdout == "", result
        assert len(result.err_lines) == 1, result.stderr
        assert names.lower() in result.err_lines[0].lower(), result.stderr
        assert "Traceback" not in result.stderr


async def test_migrate_is_idempotent(
    database_server: DatabaseServer, cli_base_env: dict[str, str], cli_cwd: Path
) -> None:
    url = database_server.create(migrate=False)
    env = {
        **cli_base_env,
        "PLUME_DATABASE_URL": url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_ENV": "test",
    }
    async with live(url) as http:
        assert (await http.get("/readyz")).status_code == 503
        for _ in range(2):
            result = await plume("migrate", env=env, cwd=cli_cwd)
            assert result.returncode == 0, result.stderr
            assert (await http.get("/readyz")).status_code == 200


async def test_an_organisation_created_by_the_command_line_gets_the_default_quotas(
    database_server: DatabaseServer, cli_base_env: dict[str, str], cli_cwd: Path
) -> None:
    # A database of its own: the defaults would be given to other tests' organisations.
    url = database_server.create()
    env = {**cli_base_env, "PLUME_DATABASE_URL": url, "PLUME_SECRET_KEY": TEST_SECRET}
    env["PLUME_ENV"] = "test"
    operator = bearer(the_key(await plume("bootstrap", env=env, cwd=cli_cwd)))
    day = {"metric": "requests", "period": "day", "limit": 300}
    async with live(url) as http:
        response = await http.put(
            "/v1/admin/default-quotas", json=[{"kind": "commune", **day}], headers=operator
        )
        assert response.status_code == 200, response.text
        insee = fresh_insee()
        created = await plume(
            f"orgs create --kind commune --insee-code {insee} --name",
            "Défaut",
            env=env,
            cwd=cli_cwd,
        )
        assert created.returncode == 0, created.stderr
        commune_id = created.stdout.split("\t")[0]
        quotas = await http.get(f"/v1/admin/organizations/{commune_id}/quotas", headers=operator)
        assert [(i["metric"], i["period"], i["limit"]) for i in quotas.json()["items"]] == [
            ("requests", "day", 300)
        ]
        audit = await http.get(
            "/v1/audit", params={"organization_id": commune_id}, headers=operator
        )
        assert audit.status_code == 200, audit.text
        # Newest first: the defaults given after the creation, by the system.
        assert [e["action"] for e in audit.json()["items"]] == [
            "quota.update",
            "organization.create",
        ]
