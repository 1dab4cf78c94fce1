"""The health probes: /healthz answers while the process runs, /readyz when the database is
reachable and migrated to head."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from plume.app import create_app
from plume.privacy import detection
from tests.runtime.helpers import live
from tests.support.clients import running
from tests.support.database import UNREACHABLE_DATABASE, DatabaseServer
from tests.support.settings import make_settings


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


async def test_with_warm_up_readyz_waits_for_the_pseudonymisation_model(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PLUME_WARM_UP: a (re)started process is not ready before the model is loaded, so a
    load balancer sends it nothing that would wait seconds for it; then it is."""
    gate = threading.Event()
    load = detection.model

    def held_model() -> object:
        gate.wait(30)
        return load()

    monkeypatch.setattr(detection, "model", held_model)
    app = create_app(make_settings(database_url, warm_up=True))
    async with running(app) as http:
        warming = await http.get("/readyz")
        assert warming.status_code == 503
        assert warming.json() == {"status": "warming"}
        assert (await http.get("/healthz")).status_code == 200  # alive all the same
        gate.set()
        for _ in range(3000):
            if (await http.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.01)
        assert (await http.get("/readyz")).status_code == 200
        assert detection._model is not None  # loaded once, for the first request's use
