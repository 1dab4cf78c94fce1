"""No resident's identifier reaches a provider in clear: every kind of draft, streamed or not,
each part of a long synthèse and its merge, chat completions; answers restored, streams
included (a placeholder cut between two chunks); the commune's identity left alone; `refuse`
and `allow`; the offline provider reads in clear; nothing of the mapping in the logs.

The fake provider (`EchoProvider`, at the HTTP boundary, behind the real LiteLLM Router)
answers with every placeholder it was sent, plus one it invents, streamed three characters
at a time so that placeholders are cut between chunks."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.responses import Response as StarletteResponse

from tests.drafting.helpers import french_source, post_draft, read, sse_events
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, Key
from tests.support.problems import assert_problem
from tests.support.providers import (
    Received,
    RecordingProvider,
    deployment,
    group,
    offline,
    router_for,
)
from tests.support.quotas import set_quotas
from tests.support.servers import serve_in_thread

PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
INVENTED = "[PERSONNE_99]"
COMMUNE = "Saint-Aubin-des-Plumes"
MAYOR = {"name": "Nathalie Leprévost", "title": "Maire"}
SECRETARY = {"name": "Gérard Vauquelin", "title": "Secrétaire général de mairie"}

# What each request plants, and must never reach the provider.
PLANTED = {
    "Jean Dupont",
    "Dupont",
    "12 rue Jean Jaurès",
    "06.12.34.56.78",
    "jean.dupont@example.fr",
    "1 84 12 76 451 089 46",
    "FR76 3000 6000 0112 3456 7890 189",
    "AB-123-CD",
    "12 mars 1980",
    "Martine Courtois",
}
COURRIER = {
    "kind": "courrier",
    "subject": "Réponse à votre demande de stationnement",
    "recipient": {"name": "M. Jean Dupont", "address": "12 rue Jean Jaurès, 76000 Rouen"},
    "points": [
        "Remercier M. Dupont de son courriel (jean.dupont@example.fr) du 3 mai 2027.",
        "Rappeler que son véhicule AB-123-CD peut stationner rue Victor Hugo, comme "
        "M. le Maire l'a indiqué, conformément à l'article L. 2213-2 du CGCT.",
        "Le rappeler au 06.12.34.56.78 ; il est né le 12 mars 1980, NIR 1 84 12 76 451 089 "
        "46, IBAN FR76 3000 6000 0112 3456 7890 189.",
    ],
    "tone": "cordial",
    "signatory": MAYOR,
}
ARRETE = {
    "kind": "arrete",
    "subject": "Autorisation d'occupation du domaine public pour un déménagement",
    "context": "M. Jean Dupont, demeurant 12 rue Jean Jaurès, joignable au 06.12.34.56.78 "
    "(jean.dupont@example.fr), demande à stationner un camion AB-123-CD devant son domicile "
    "le 14 juin 2027, de 8 h à 18 h. Il est né le 12 mars 1980 (NIR 1 84 12 76 451 089 46). "
    "Mme Martine Courtois, voisine, a donné son accord.",
    "provisions": [
        "M. Jean Dupont est autorisé à stationner un camion de déménagement au droit du "
        "12 rue Jean Jaurès le 14 juin 2027, de 8 h à 18 h.",
        "La signalisation est mise en place par le bénéficiaire.",
    ],
}
DELIBERATION = {
    "kind": "deliberation",
    "subject": "Remboursement de frais avancés par un administré",
    "context": "M. Jean Dupont (12 rue Jean Jaurès, 06.12.34.56.78, jean.dupont@example.fr) "
    "a avancé 240 euros pour la réparation d'un banc ; le remboursement sera versé sur son "
    "compte FR76 3000 6000 0112 3456 7890 189. Mme Martine Courtois a signalé la panne.",
    "decisions": [
        "Rembourser à M. Jean Dupont la somme de 240 euros.",
        "Dire que les crédits sont inscrits au budget primitif 2027.",
    ],
    "session_date": "2027-05-27",
}
BULLETIN = {
    "kind": "bulletin_article",
    "subject": "Un centenaire à la résidence des Tilleuls",
    "key_points": [
        "M. Jean Dupont, né le 12 mars 1980 et domicilié 12 rue Jean Jaurès, organise la fête.",
        "Contact : 06.12.34.56.78 ou jean.dupont@example.fr.",
        "Mme Martine Courtois apportera les gâteaux.",
    ],
}
SHORT_SYNTHESE = {
    "kind": "synthese",
    "source_text": "Compte rendu. M. Jean Dupont, 12 rue Jean Jaurès, 06.12.34.56.78, "
    "jean.dupont@example.fr, NIR 1 84 12 76 451 089 46, a demandé un rendez-vous. "
    "Mme Martine Courtois était présente. Le conseil municipal en a débattu.",
}
KINDS = [COURRIER, ARRETE, DELIBERATION, BULLETIN, SHORT_SYNTHESE]


def echo_answer(body: dict[str, Any]) -> str:
    sent = " ".join(str(m.get("content") or "") for m in body["messages"])
    seen = list(dict.fromkeys(PLACEHOLDER.findall(sent)))
    return "Réponse : " + " ; ".join([*seen, INVENTED]) + f". {COMMUNE}."


class EchoProvider(RecordingProvider):
    """Answers with the placeholders it was sent (each once, in order) and one it invents;
    streams three characters at a time."""

    async def chat(self, request: Request) -> StarletteResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        if not model.startswith("echo"):
            return await super().chat(request)
        self.received.append(Received(body, request.headers.get("authorization")))
        text = echo_answer(body)
        usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        if body.get("stream"):
            return StreamingResponse(
                self._pieces(model, text, usage), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    async def _pieces(self, model: str, text: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "model": model}
        for start in range(0, len(text), 3):
            chunk = {
                **base,
                "choices": [{"index": 0, "delta": {"content": text[start : start + 3]}}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0)
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\n".encode()
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProvider]:
    provider = EchoProvider()
    with serve_in_thread(provider.app, provider.port):
        yield provider


@pytest.fixture
def echo_app(make_app: AppFactory, echo: EchoProvider) -> FastAPI:
    base = echo.api_base
    router = router_for(
        group("standard", deployment("echo", base, provider="fake"), default=True),
        group(
            "petit",
            deployment("echo-small", base, provider="fake", context_window=2048),
            max_output_tokens=256,
        ),
        group("hors-ligne", offline()),
        group("secours", deployment("e500", base, provider="fake"), fallbacks=("hors-ligne",)),
    )
    return make_app(provider_router=router)


@pytest.fixture
async def echo_client(echo_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_for(echo_app, timeout=120) as http:
        yield http


@pytest.fixture
async def commune_key(factory: Factory) -> Key:
    commune = await factory.commune(COMMUNE, mayor=MAYOR, secretary=SECRETARY)
    return await factory.key(commune, "agent")


def sent_text(bodies: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for b in bodies for m in b["messages"])


def assert_nothing_planted(text: str) -> None:
    leaked = sorted(p for p in PLANTED if p in text)
    assert not leaked, leaked


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("body", KINDS, ids=[k["kind"] for k in KINDS])
async def test_no_planted_identifier_reaches_the_provider_and_the_draft_has_them_back(
    echo_client: AsyncClient,
    echo: EchoProvider,
    commune_key: Key,
    body: dict[str, Any],
    stream: bool,
) -> None:
    before = len(echo.received)
    response = await post_draft(echo_client, commune_key, {**body, "stream": stream})
    if stream:
        assert response.status_code == 200, response.text
        events = sse_events(response.text)
        streamed = "".join(data["text"] for name, data in events if name == "delta")
        draft = events[-1][1]
        assert events[-1][0] == "draft", events[-1]
        assert not PLACEHOLDER.sub("", streamed.replace(INVENTED, "")).count("[PERSONNE")
        assert "Jean Dupont" in streamed
    else:
        assert response.status_code == 201, response.text
        draft = response.json()
    bodies = [r.body for r in echo.received[before:]]
    assert len(bodies) == 1
    sent = sent_text(bodies)
    assert_nothing_planted(sent)
    assert "[PERSONNE_1]" in sent
    # The commune's identity is left as it is.
    assert COMMUNE in sent
    if body["kind"] == "courrier":
        assert "Nathalie Leprévost" in sent
        assert "rue Victor Hugo" in sent
        assert "M. le Maire" in sent
        assert "article L. 2213-2" in sent
    # Restored before it is stored and returned: the originals, the invented placeholder
    # left as it is.
    assert "Jean Dupont" in draft["text"]
    assert "12 rue Jean Jaurès" in draft["text"]
    assert INVENTED in draft["text"]
    assert not re.search(r"\[(ADRESSE|TELEPHONE|EMAIL|PERSONNE)_[1-9]\]", draft["text"])
    assert draft["usage"]["pseudonymised"] >= 4
    assert await read(echo_client, commune_key, draft["id"]) == draft
    if body["kind"] == "courrier" and not stream:  # shown with `pytest -s` (docs/privacy.md)
        print("\nREQUEST", json.dumps(body, ensure_ascii=False, indent=1))
        print("PROVIDER RECEIVED (user message)", bodies[0]["messages"][-1]["content"])
        print("PROVIDER ANSWERED", echo_answer(bodies[0]))
        print("RESTORED DRAFT", draft["text"])


async def test_every_part_of_a_long_synthese_and_its_merge_are_pseudonymised(
    echo_client: AsyncClient, echo: EchoProvider, commune_key: Key
) -> None:
    planted = (
        " M. Jean Dupont, 12 rue Jean Jaurès, tél. 06.12.34.56.78, courriel "
        "jean.dupont@example.fr, a pris la parole. "
    )
    source = "\n\n".join(french_source(6_000, seed=seed) + planted for seed in range(1, 8))
    before = len(echo.received)
    response = await post_draft(
        echo_client,
        commune_key,
        {"kind": "synthese", "source_text": source, "model_group": "petit", "stream": True},
    )
    assert response.status_code == 200, response.text[:500]
    events = sse_events(response.text)
    assert events[-1][0] == "draft", events[-1]
    bodies = [r.body for r in echo.received[before:]]
    assert len(bodies) > 2  # parts, then the merge
    for body in bodies:
        assert_nothing_planted(sent_text([body]))
    # One mapping for the request: the same resident is the same placeholder in every part.
    assert all(
        "[PERSONNE_1]" in sent_text([b]) for b in bodies[:-1] if "PERSONNE" in sent_text([b])
    )
    draft = events[-1][1]
    assert "Jean Dupont" in draft["text"]


async def test_a_synthese_job_pseudonymises_its_parts_and_its_merge(
    echo_app: FastAPI, echo_client: AsyncClient, echo: EchoProvider, commune_key: Key
) -> None:
    planted = " M. Jean Dupont, 12 rue Jean Jaurès, tél. 06.12.34.56.78, a pris la parole. "
    source = "\n\n".join(french_source(6_000, seed=seed) + planted for seed in range(1, 8))
    before = len(echo.received)
    response = await post_draft(
        echo_client,
        commune_key,
        {"kind": "synthese", "source_text": source, "model_group": "petit"},
    )
    assert response.status_code == 202, response.text[:500]
    assert await echo_app.state.synthese_worker.run_once() is True
    done = await read(echo_client, commune_key, response.json()["id"])
    assert done["status"] == "draft", done
    bodies = [r.body for r in echo.received[before:]]
    assert len(bodies) > 2
    for body in bodies:
        assert_nothing_planted(sent_text([body]))
    assert "Jean Dupont" in done["text"]
    assert done["usage"]["pseudonymised"] >= 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_chat_completions_are_pseudonymised_and_restored(
    echo_client: AsyncClient, echo: EchoProvider, commune_key: Key, stream: bool
) -> None:
    before = len(echo.received)
    payload = {
        "messages": [
            {"role": "system", "content": "Tu aides la mairie. L'usager est M. Jean Dupont."},
            {
                "role": "user",
                "content": "Rédige une réponse à Jean Dupont, 12 rue Jean Jaurès, "
                "06.12.34.56.78, au sujet de son véhicule AB-123-CD.",
            },
        ],
        "stream": stream,
    }
    response = await echo_client.post(
        "/v1/chat/completions", json=payload, headers=commune_key.headers
    )
    assert response.status_code == 200, response.text
    sent = sent_text([r.body for r in echo.received[before:]])
    assert_nothing_planted(sent)
    # The same person in the system and the user message: one placeholder.
    assert sent.count("[PERSONNE_1]") == 2
    assert "[PERSONNE_2]" not in sent
    if stream:
        chunks = [
            json.loads(line[len("data: ") :])
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert "Jean Dupont" in text
    assert "12 rue Jean Jaurès" in text
    assert "AB-123-CD" in text
    assert INVENTED in text
    assert response.headers["X-Plume-Pseudonymised"] == "4"


async def test_refuse_names_the_fields_and_charges_nothing(
    echo_client: AsyncClient, echo: EchoProvider, factory: Factory
) -> None:
    commune = await factory.commune("Refusville", personal_data="refuse")
    key = await factory.key(commune, "agent")
    operator = await factory.operator_key()
    quota = [{"metric": "requests", "period": "day", "limit": 5}]
    assert (await set_quotas(echo_client, operator, commune, quota)).status_code == 200
    before = len(echo.received)
    response = await post_draft(echo_client, key, COURRIER)
    problem = assert_problem(response, 422, "personal_data_refused")
    fields = {e["field"] for e in problem["errors"]}
    assert {"recipient.name", "recipient.address", "points[0]", "points[2]"} <= fields
    assert "points[1]" not in fields or "AB-123-CD" in COURRIER["points"][1]
    assert "subject" not in fields
    assert "signatory.name" not in fields
    assert len(echo.received) == before
    items = (await echo_client.get("/v1/quotas", headers=key.headers)).json()["items"]
    assert [(i["limit"], i["used"]) for i in items] == [(5, 0)]
    # A request without personal data goes through.
    clean = {
        "kind": "courrier",
        "subject": "Horaires d'été de la mairie",
        "recipient": {"name": "Les habitants du hameau"},
        "points": ["Annoncer que la mairie ferme à 17 h en juillet et en août."],
    }
    answer = await post_draft(echo_client, key, clean)
    assert answer.status_code == 201, answer.text
    chat = await echo_client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Écris à Mme Martine Courtois."}]},
        headers=key.headers,
    )
    assert chat.status_code == 422
    assert chat.json()["error"]["code"] == "personal_data_refused"
    assert chat.json()["error"]["param"] == "messages[0].content"


async def test_allow_set_by_the_operator_sends_clear_text(
    echo_client: AsyncClient, echo: EchoProvider, factory: Factory, db: Any
) -> None:
    operator_key = await factory.operator_key()
    operator = await factory.operator()
    response = await echo_client.patch(
        f"/v1/admin/organizations/{operator.id}",
        json={"policy": {"personal_data": "allow"}},
        headers=operator_key.headers,
    )
    assert response.status_code == 200, response.text
    key = await factory.key(await factory.commune("Clairville"), "agent")
    before = len(echo.received)
    draft = (await post_draft(echo_client, key, ARRETE)).json()
    sent = sent_text([r.body for r in echo.received[before:]])
    assert "Jean Dupont" in sent
    assert "12 rue Jean Jaurès" in sent
    assert draft["usage"]["pseudonymised"] == 0
    # A commune below may narrow again.
    narrowed = await factory.key(
        await factory.commune("Prudentville", personal_data="pseudonymise"), "agent"
    )
    before = len(echo.received)
    await post_draft(echo_client, narrowed, ARRETE)
    assert_nothing_planted(sent_text([r.body for r in echo.received[before:]]))


async def test_allow_is_the_operators_alone(
    echo_client: AsyncClient, factory: Factory, commune_key: Key
) -> None:
    commune = await factory.commune("Largeville")
    operator_key = await factory.operator_key()
    response = await echo_client.patch(
        f"/v1/admin/organizations/{commune.id}",
        json={"policy": {"personal_data": "allow"}},
        headers=operator_key.headers,
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert problem["errors"][0]["field"] == "policy.personal_data"
    admin = await factory.key(commune, "tenant_admin")
    response = await echo_client.patch(
        f"/v1/admin/organizations/{commune.id}",
        json={"policy": {"personal_data": "allow"}},
        headers=admin.headers,
    )
    assert response.status_code == 403


async def test_the_offline_provider_reads_the_request_in_clear(
    echo_client: AsyncClient, echo: EchoProvider, commune_key: Key
) -> None:
    # The group's provider fails, the offline provider answers as its fallback: the
    # letter it composes names the resident as the request did.
    response = await post_draft(echo_client, commune_key, {**COURRIER, "model_group": "secours"})
    assert response.status_code == 201, response.text
    draft = response.json()
    assert draft["usage"]["provider"] == "offline"
    assert "Jean Dupont" in draft["text"]
    assert not PLACEHOLDER.search(draft["text"])


async def test_logs_of_a_request_hold_no_identifier_nor_mapping(
    echo_client: AsyncClient, commune_key: Key, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await post_draft(echo_client, commune_key, {**ARRETE, "stream": True})
    assert response.status_code == 200
    logged = caplog.text + "".join(capsys.readouterr())
    # Even at DEBUG (the provider SDK logs the request it sends: placeholders only).
    assert_nothing_planted(logged)
    assert "Pseudonyms(" not in logged or "items)" in logged
