"""A settlement the database went away under (a failover), reproduced on a real database:
the connection is killed right after the settlement's commit (its acknowledgement lost), or
inside its transaction (nothing committed). Whatever Plume answers, the request is charged
once, and a client that retries with its Idempotency-Key never pays twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from plume.app import create_app
from plume.calls import recovery
from plume.calls import settlement as settlement_module
from plume.db import create_engine, create_session_factory
from plume.routing.router import ProviderRouter
from tests.support.chat import chat_body
from tests.support.clients import client_for
from tests.support.factories import Factory, Key
from tests.support.problems import assert_openai_error, assert_problem
from tests.support.providers import unreachable_router
from tests.support.quotas import ARTICLE
from tests.support.settings import TEST_SECRET, make_settings

SETTLEMENT = "INSERT INTO usage_records"


@dataclass
class Cut:
    """Kills the connection of the next settlement: `after_commit` once it committed (the
    client sees the connection lost, as when a primary dies before acknowledging), else
    inside its transaction, before the commit."""

    admin_url: str
    after_commit: bool
    # The statement the cut follows: the usage record's, or the draft's the settlement stores.
    statement: str = SETTLEMENT
    armed: bool = True
    settling: list[int] = field(default_factory=list)
    fired: int = 0

    def _kill(self, pid: int) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        self.fired += 1

    def executed(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.armed or self.statement not in statement:
            return
        self.armed = False
        pid = connection.connection.driver_connection.info.backend_pid
        if self.after_commit:
            self.settling.append(pid)
        else:
            self._kill(pid)

    def committed(self, session: Session) -> None:
        if self.settling:
            self._kill(self.settling.pop())
            raise psycopg.OperationalError("server closed the connection unexpectedly")


@contextmanager
def cutting(engine: AsyncEngine, cut: Cut) -> Iterator[Cut]:
    event.listen(engine.sync_engine, "after_cursor_execute", cut.executed)
    event.listen(Session, "after_commit", cut.committed)
    try:
        yield cut
    finally:
        event.remove(Session, "after_commit", cut.committed)
        event.remove(engine.sync_engine, "after_cursor_execute", cut.executed)


@dataclass
class Served:
    http: AsyncClient
    engine: AsyncEngine
    agent: Key
    operator: Key
    organization_id: uuid.UUID
    admin_url: str

    def books(self) -> tuple[list[tuple[str, str, bool]], int]:
        """The usage records (request id, outcome, charged) and the ledger's day count."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            records = admin.execute(
                "SELECT request_id, outcome, charged FROM usage_records"
                " WHERE organization_id = %s ORDER BY created_at",
                (self.organization_id,),
            ).fetchall()
            ledger = admin.execute(
                "SELECT day_requests FROM quota_ledger WHERE organization_id = %s",
                (self.organization_id,),
            ).fetchone()
        assert ledger is not None
        return [(r, o, c) for r, o, c in records], int(ledger[0])


@pytest.fixture
async def served(committed_database_url: str) -> AsyncIterator[Served]:
    async with serving(committed_database_url) as served:
        yield served


@asynccontextmanager
async def serving(url: str, router: ProviderRouter | None = None) -> AsyncIterator[Served]:
    """An application on the committed database `url` (real commits), with a commune whose
    day quota of requests is set."""
    engine = create_engine(url)
    async with create_session_factory(engine)() as session, session.begin():
        setup = Factory(session, TEST_SECRET)
        operator = await setup.operator_key()
        commune = await setup.commune()
        agent = await setup.key(commune)
    admin_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    app = create_app(make_settings(url), engine=engine, provider_router=router)
    try:
        async with client_for(app) as http:
            quotas = await http.put(
                f"/v1/admin/organizations/{commune.id}/quotas",
                json=[{"metric": "requests", "period": "day", "limit": 50}],
                headers=operator.headers,
            )
            assert quotas.status_code == 200, quotas.text
            yield Served(http, engine, agent, operator, commune.id, admin_url)
    finally:
        await engine.dispose()


def _request(path: str, served: Served, key: str) -> dict[str, Any]:
    body = chat_body() if path.endswith("completions") else ARTICLE
    headers = {**served.agent.headers, "Idempotency-Key": key, "X-Request-ID": key}
    return {"json": body, "headers": headers}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/drafts"])
async def test_a_commit_whose_acknowledgement_was_lost_answers_its_success_charged_once(
    served: Served, path: str
) -> None:
    """The settlement committed, then the connection died before Plume heard so: Plume
    finds it committed and answers the success; one usage record, one request counted."""
    key = f"ack-lost-{uuid.uuid4()}"
    with cutting(served.engine, Cut(served.admin_url, after_commit=True)) as cut:
        answer = await served.http.post(path, **_request(path, served, key))
    assert cut.fired == 1
    assert answer.status_code in (200, 201), answer.text
    retried = await served.http.post(path, **_request(path, served, key))
    assert retried.headers["idempotency-replayed"] == "true"
    assert retried.json() == answer.json()
    records, used = served.books()
    assert records == [(key, "success", True)]
    assert used == 1


@pytest.mark.parametrize(
    ("path", "statement"),
    [
        ("/v1/chat/completions", SETTLEMENT),
        ("/v1/drafts", SETTLEMENT),
        ("/v1/drafts", "INSERT INTO drafts"),
    ],
    ids=["chat", "draft-at-usage", "draft-at-draft"],
)
async def test_a_settlement_cut_before_its_commit_is_written_again_charged_once(
    served: Served, path: str, statement: str
) -> None:
    """The connection died inside the settlement's transaction (after its usage record, or
    after the draft it stores): nothing committed; Plume writes it again on a new connection
    and answers the success, the draft stored once."""
    key = f"cut-{uuid.uuid4()}"
    cut = Cut(served.admin_url, after_commit=False, statement=statement)
    with cutting(served.engine, cut):
        answer = await served.http.post(path, **_request(path, served, key))
    assert cut.fired == 1
    assert answer.status_code in (200, 201), answer.text
    records, used = served.books()
    assert records == [(key, "success", True)]
    assert used == 1
    if path == "/v1/drafts":
        with psycopg.connect(served.admin_url, autocommit=True) as admin:
            drafts = admin.execute(
                "SELECT id::text FROM drafts WHERE organization_id = %s", (served.organization_id,)
            ).fetchall()
        assert drafts == [(answer.json()["id"],)]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/drafts"])
async def test_a_503_whose_request_was_recorded_is_replayed_by_its_key_not_charged_again(
    served: Served, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database does not come back in time to say whether the commit happened (no
    second attempt here): 503, which says the request may have been recorded. It was: the
    retry with the same Idempotency-Key gets the recorded answer, and nothing more is
    charged."""
    monkeypatch.setattr(recovery, "AGAIN_AFTER_S", ())
    key = f"unknown-{uuid.uuid4()}"
    with cutting(served.engine, Cut(served.admin_url, after_commit=True)) as cut:
        answer = await served.http.post(path, **_request(path, served, key))
    assert cut.fired == 1
    if path.endswith("completions"):
        assert_openai_error(answer, 503, "unavailable")
    else:
        assert_problem(answer, 503, "unavailable")
    retried = await served.http.post(path, **_request(path, served, key))
    assert retried.status_code in (200, 201), retried.text
    assert retried.headers["idempotency-replayed"] == "true"
    records, used = served.books()
    assert records == [(key, "success", True)]
    assert used == 1


async def test_a_failed_request_cut_by_the_database_releases_its_reservation_soon_after(
    committed_database_url: str,
) -> None:
    """The provider failed (502) and the database went away as the failure was settled:
    the request is answered at once, and its reservation is released on the database that
    answers next, in the background, not held until the sweep (15 minutes)."""
    async with serving(committed_database_url, unreachable_router()) as served:
        key = f"released-{uuid.uuid4()}"
        with cutting(served.engine, Cut(served.admin_url, after_commit=False)) as cut:
            answer = await served.http.post("/v1/drafts", **_request("/v1/drafts", served, key))
        assert cut.fired == 1
        assert_problem(answer, 502, "provider_unavailable")
        for _ in range(50):
            records, used = served.books()
            if records:
                break
            await asyncio.sleep(0.1)
        assert records == [(key, "failure", False)]
        assert used == 0
        with psycopg.connect(served.admin_url, autocommit=True) as admin:
            held = admin.execute(
                "SELECT count(*) FROM quota_reservations WHERE organization_id = %s",
                (served.organization_id,),
            ).fetchone()
            reserved = admin.execute(
                "SELECT reserved_requests FROM quota_ledger WHERE organization_id = %s",
                (served.organization_id,),
            ).fetchone()
        assert held == (0,)
        assert reserved == (0,)


# --------------------------------------------------------------------------------------
# A chat completion without an Idempotency-Key: its settlement is one pipelined round trip
# on a pooled connection, without a session (plume.calls.repository.settle_in_one_round_trip)
# --------------------------------------------------------------------------------------


def _keyless_chat(served: Served, request_id: str) -> dict[str, Any]:
    return {"json": chat_body(), "headers": {**served.agent.headers, "X-Request-ID": request_id}}


def _killing(served: Served, *, after: bool) -> tuple[Any, list[int]]:
    """settle_in_one_round_trip, with its connection killed before it runs (nothing
    committed) or after it committed (the acknowledgement lost, as when a primary dies)."""
    original = settlement_module.settle_in_one_round_trip
    killed: list[int] = []

    async def killed_once(driver: psycopg.AsyncConnection[Any], *args: Any) -> None:
        if killed:
            return await original(driver, *args)
        killed.append(driver.info.backend_pid)
        if not after:
            Cut(served.admin_url, after_commit=False)._kill(killed[0])
            return await original(driver, *args)
        await original(driver, *args)
        Cut(served.admin_url, after_commit=True)._kill(killed[0])
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    return killed_once, killed


async def test_a_chat_without_a_key_is_settled_without_a_session_and_recorded_whole(
    served: Served,
) -> None:
    """Its usage record, the ledger's count and the audit chain, as any settlement leaves
    them; and no statement of it went through a session."""
    through_sessions: list[str] = []

    def seen(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if SETTLEMENT in statement:
            through_sessions.append(statement)

    event.listen(served.engine.sync_engine, "after_cursor_execute", seen)
    try:
        request_id = f"alone-{uuid.uuid4()}"
        answer = await served.http.post("/v1/chat/completions", **_keyless_chat(served, request_id))
    finally:
        event.remove(served.engine.sync_engine, "after_cursor_execute", seen)
    assert answer.status_code == 200, answer.text
    assert through_sessions == []
    records, used = served.books()
    assert records == [(request_id, "success", True)]
    assert used == 1
    verified = await served.http.get(
        "/v1/audit/verify",
        params={"organization_id": str(served.organization_id)},
        headers=served.operator.headers,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["valid"] is True
    assert verified.json()["checked"] >= 1


@pytest.mark.parametrize("after", [False, True], ids=["cut-before-commit", "ack-lost"])
async def test_a_chat_without_a_key_whose_settlement_is_cut_is_charged_once(
    served: Served, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    """The connection dies before the pipelined settlement ran, or after it committed
    without Plume hearing so: Plume asks the next connection, writes it again if it was not
    committed, and answers the success; one usage record, one request counted."""
    killing, killed = _killing(served, after=after)
    monkeypatch.setattr(settlement_module, "settle_in_one_round_trip", killing)
    request_id = f"alone-cut-{uuid.uuid4()}"
    answer = await served.http.post("/v1/chat/completions", **_keyless_chat(served, request_id))
    assert len(killed) == 1
    assert answer.status_code == 200, answer.text
    records, used = served.books()
    assert records == [(request_id, "success", True)]
    assert used == 1
