"""Settings from the environment, the `plume` command as operators run it, and the
health probes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from httpx import AsyncClient

from plume.app import create_app
from plume.config import ConfigurationError, load_settings
from tests.support.clients import running
from tests.support.database import DatabaseServer
from tests.support.factories import fresh_insee, fresh_siren
from tests.support.processes import PLUME
from tests.support.servers import free_port
from tests.support.settings import TEST_SECRET, make_settings

KEY = re.compile(r"^plm_[A-Za-z0-9_-]{43,128}$")
UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/plume_nowhere"


def live(database_url: str) -> AsyncIterator[AsyncClient]:
    return running(create_app(make_settings(database_url)))  # type: ignore[return-value]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- settings ------------------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No PLUME_ variable but those a test sets; the working directory is a scratch one."""
    for name in list(os.environ):
        if name.startswith("PLUME_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def configuration_error() -> str:
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.strip()
    assert "\n" not in message.strip()
    return message


def test_production_requires_a_secret(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("PLUME_ENV", "production")
    environment.setenv("PLUME_STATE_DIR", str(tmp_path / "state"))
    assert "PLUME_SECRET_KEY" in configuration_error()
    assert not (tmp_path / "state" / "secret").exists()


@pytest.mark.parametrize("env", ["production", "development"])
@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("short-secret", id="short"),
        pytest.param("x" * 31, id="31-chars"),
        pytest.param("a" * 48, id="one-character"),
        pytest.param("ab" * 24, id="two-characters"),
    ],
)
def test_weak_secrets_are_refused(environment: pytest.MonkeyPatch, env: str, secret: str) -> None:
    environment.setenv("PLUME_ENV", env)
    environment.setenv("PLUME_SECRET_KEY", secret)
    message = configuration_error()
    assert "PLUME_SECRET_KEY" in message
    assert secret not in message


def test_a_strong_secret_is_used_as_given(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_ENV", "production")
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == TEST_SECRET


@pytest.mark.parametrize("env", [None, "development"])
def test_development_generates_one_shared_secret(
    environment: pytest.MonkeyPatch, tmp_path: Path, env: str | None
) -> None:
    if env is not None:
        environment.setenv("PLUME_ENV", env)
    state = tmp_path / "state" / "nested"
    environment.setenv("PLUME_STATE_DIR", str(state))

    first = load_settings()
    assert first.secret_key is not None
    secret = first.secret_key.get_secret_value()
    assert len(secret) >= 32
    path = state / "secret"
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    second = load_settings()
    assert second.secret_key is not None
    assert second.secret_key.get_secret_value() == secret

    # Another state directory gets its own, random, secret.
    environment.setenv("PLUME_STATE_DIR", str(tmp_path / "elsewhere"))
    other = load_settings().secret_key
    assert other is not None
    assert other.get_secret_value() != secret


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5"])
def test_invalid_max_body_bytes_is_named(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_MAX_BODY_BYTES", value)
    assert "PLUME_MAX_BODY_BYTES" in configuration_error()


def test_max_body_bytes_defaults_to_one_mebibyte(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    assert load_settings().max_body_bytes == 1024 * 1024
    environment.setenv("PLUME_MAX_BODY_BYTES", "2048")
    assert load_settings().max_body_bytes == 2048


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLUME_ENV", "staging"),
        ("PLUME_DATABASE_URL", "mysql://root@localhost/plume"),
    ],
)
def test_other_invalid_settings_are_named(
    environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv(name, value)
    assert name in configuration_error()


def test_a_plain_postgresql_url_uses_psycopg(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PLUME_SECRET_KEY", TEST_SECRET)
    environment.setenv("PLUME_DATABASE_URL", "postgresql://plume@db.example/plume")
    assert load_settings().database_url == "postgresql+psycopg://plume@db.example/plume"


# --- the command line ----------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out_lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def cli_base_env(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of `plume` subprocesses, without any PLUME_ variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUME_")}
    # Share compiled bytecode between the subprocesses, and between runs when pytest's
    # cache is on (outside the venv): with PYTHONDONTWRITEBYTECODE each one would
    # otherwise recompile every module it imports.
    cache = getattr(pytestconfig, "cache", None)
    pycache = cache.mkdir("plume-pycache") if cache else tmp_path_factory.mktemp("pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@pytest.fixture(scope="session")
def cli_env(cli_base_env: dict[str, str], committed_database_url: str) -> dict[str, str]:
    return {
        **cli_base_env,
        "PLUME_DATABASE_URL": committed_database_url,
        "PLUME_SECRET_KEY": TEST_SECRET,
        "PLUME_ENV": "test",
    }


@pytest.fixture(scope="session")
def cli_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


async def plume(command: str, *more: str, env: dict[str, str], cwd: Path) -> Result:
    """Run `plume <command split on spaces> <more...>`."""
    process = await asyncio.create_subprocess_exec(
        PLUME,
        *command.split(),
        *more,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


def the_key(result: Result) -> str:
    """The command succeeded and printed one key alone on standard output."""
    assert result.returncode == 0, result.stderr
    assert len(result.out_lines) == 1, result.stdout
    assert KEY.match(result.out_lines[0]), result.stdout
    return result.out_lines[0]


@pytest.fixture(scope="session")
async def bootstrapped(cli_env: dict[str, str], cli_cwd: Path) -> Result:
    return await plume("bootstrap", env=cli_env, cwd=cli_cwd)


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
    unknown = fresh_insee()
    new_key = "keys create --role agent --name x --organization"

    bad_insee, missing_url, missing_secret, unknown_org, bad_key_id = await asyncio.gather(
        plume("orgs create --kind commune --name X --insee-code 123", env=cli_env, cwd=cli_cwd),
        plume("orgs list", env=no_database, cwd=cli_cwd),
        plume(new_key, "operator", env=production, cwd=cli_cwd),
        plume(new_key, unknown, env=cli_env, cwd=cli_cwd),
        plume("keys revoke not-a-key-id", env=cli_env, cwd=cli_cwd),
    )
    for result, names in [
        (bad_insee, "insee"),
        (missing_url, "PLUME_DATABASE_URL"),
        (missing_secret, "PLUME_SECRET_KEY"),
        (unknown_org, unknown),
        (bad_key_id, "not-a-key-id"),
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


# --- health probes -------------------------------------------------------------------------


async def test_healthz_and_readyz_on_a_migrated_database(database_url: str) -> None:
    async with live(database_url) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text


async def test_readyz_is_503_without_migrations(database_server: DatabaseServer) -> None:
    async with live(database_server.create(migrate=False)) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


async def test_readyz_is_503_behind_head(database_server: DatabaseServer) -> None:
    url = database_server.create(migrate=False)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('0000older')")
    async with live(url) as http:
        assert (await http.get("/readyz")).status_code == 503


async def test_readyz_is_503_when_the_database_is_down() -> None:
    async with live(UNREACHABLE_DATABASE) as http:
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


# --- plume serve ---------------------------------------------------------------------------


async def test_serve_answers_and_stops_cleanly_on_sigterm(
    cli_env: dict[str, str], cli_cwd: Path
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        PLUME,
        "serve",
        "--port",
        str(port),
        env=cli_env,
        cwd=cli_cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            for _ in range(150):
                assert process.returncode is None, "plume serve exited early"
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail("plume serve did not answer /healthz within 15 s")
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.headers["x-request-id"]

        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert stdout == b""  # logs go to standard error
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
