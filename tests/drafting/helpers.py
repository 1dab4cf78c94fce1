"""What the drafting tests share: the project's example requests (docs/examples/requests),
the ACTES natures they must get, canned acts and `ActProvider`, the fake provider that
answers them, its routing file, and helpers to post, read and review drafts.

`ActProvider` is the tests' recording fake provider, which also answers canned acts
(complete, or deliberately missing a part) for the models named in `CANNED`; other `ok…`
models answer "Bonjour, je suis un modèle de test." as a real model that ignored the
instructions would.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from httpx import AsyncClient, Response
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.responses import Response as StarletteResponse

from plume.drafting.checker import LEGAL_CODES
from plume.routing.tokens import count_message_tokens
from tests.support.factories import Key
from tests.support.providers import (
    Received,
    RecordingProvider,
    deployment,
    group,
    routing_yaml,
)

# The project's own example requests, part of the repository: never skipped when absent.
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "docs" / "examples" / "requests"


EXAMPLES: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(EXAMPLES_DIR.glob("*.json"))
}


ACTS = ("arrete", "deliberation")


# The ACTES sous-matière each example act must get (a code ending in "." would accept any
# sous-matière of that matière).
EXPECTED_NATURE = {
    "arrete-course-cycliste": "6.1",
    "arrete-marche-hebdomadaire": "6.1",
    "arrete-terrasse-cafe": "3.5",
    "arrete-travaux-pont": "6.1",
    "deliberation-emploi-saisonnier": "4.2",
    "deliberation-subvention-association-sportive": "7.5",
    "deliberation-tarifs-concessions-cimetiere": "7.10",
}


COMMUNE = "Saint-Aubin-des-Plumes"


CGCT = "Code général des collectivités territoriales"


DRAFT_KEYS = {
    "id",
    "kind",
    "status",
    "text",
    "sections",
    "warnings",
    "acte_nature",
    "usage",
    "ai_notice",
    "review",
    "created_at",
    "created_by",
}


REVIEWER = {"name": "Claire Dubois", "title": "Secrétaire de mairie"}


SMALL_WINDOW = 2048


SMALL_OUTPUT = 256


# --------------------------------------------------------------------------------------
# Canned answers of the fake provider
# --------------------------------------------------------------------------------------


ARRETE_ANSWER = f"""# Arrêté du maire n° 2027-014

## Réglementation temporaire de la circulation et du stationnement rue de l'Église

Le Maire de la commune de {COMMUNE},

Vu le Code général des collectivités territoriales, notamment ses articles L. 2212-1, \
L. 2212-2 et L. 2213-1 ;

Vu le Code de la route, notamment ses articles R. 411-8 et R. 411-25 ;

Considérant que le syndicat d'eau fait renouveler la conduite d'eau potable rue de l'Église ;

Considérant que la largeur restante de la chaussée ne permet pas le croisement des véhicules ;

**ARRÊTE**

**Article 1er** : Du 1er au 12 mars 2027, de 8 h à 18 h, la circulation est alternée par \
feux tricolores rue de l'Église.

**Article 2** : Le stationnement est interdit des deux côtés de la rue sur l'emprise du chantier.

**Article 3** : La secrétaire de mairie et le commandant de la brigade de gendarmerie sont \
chargés, chacun en ce qui le concerne, de l'exécution du présent arrêté, qui sera publié et \
affiché en mairie.

Fait à {COMMUNE}, le 20 février 2027

Le Maire,
Jean-Marc Gaillon

*Le présent arrêté peut faire l'objet d'un recours contentieux devant le tribunal \
administratif de Rouen dans un délai de deux mois à compter de sa publication ou de sa \
notification.*

Nature ACTES : 6.1
"""


DELIBERATION_ANSWER = f"""# Délibération du conseil municipal de {COMMUNE}

## Attribution d'une subvention exceptionnelle au Comité des fêtes

Séance du 8 avril 2027

Le conseil municipal de la commune de {COMMUNE}, régulièrement convoqué, s'est réuni le \
8 avril 2027 sous la présidence de Jean-Marc Gaillon, Maire.

### Exposé

Le Comité des fêtes organise en 2027 le 150e anniversaire de l'église Saint-Martin et \
sollicite une aide exceptionnelle de 1 500 €.

Vu le Code général des collectivités territoriales, notamment son article L. 2121-29 ;

Considérant l'intérêt local de cette manifestation ;

Après en avoir délibéré, le conseil municipal **DÉCIDE** :

**Article 1er** : d'attribuer une subvention exceptionnelle de 1 500 € au Comité des fêtes.

**Article 2** : Le Maire est chargé de l'exécution de la présente délibération.

Votes : pour 11, contre 0, abstentions 1.

Fait à {COMMUNE}, le 8 avril 2027

Le Maire,
Jean-Marc Gaillon

*La présente délibération peut faire l'objet d'un recours contentieux devant le tribunal \
administratif de Rouen dans un délai de deux mois à compter de sa publication.*

Nature ACTES : 7.5
"""


def _without(text: str, predicate: Any) -> str:
    return "\n\n".join(p for p in text.split("\n\n") if not predicate(p))


def _with_many_articles(text: str, count: int) -> str:
    """The délibération with `count` more articles of 40 lines each (a 2 MB answer: seconds
    of parsing and checking)."""
    body = "".join(f"- la subvention n° {n} est versée au Comité ;\n" for n in range(40))
    extra = "".join(f"**Article {n}** : {body}\n" for n in range(3, 3 + count))
    return text.replace("Votes :", extra + "Votes :", 1)


# model -> the act it answers; the group of the same name routes to it.
CANNED: dict[str, str] = {
    "act-complet": ARRETE_ANSWER,
    "act-sans-recours": _without(ARRETE_ANSWER, lambda p: "recours" in p),
    "act-sans-visas": _without(ARRETE_ANSWER, lambda p: p.startswith("Vu ")),
    "act-autre-tribunal": ARRETE_ANSWER.replace("de Rouen", "de Caen"),
    "act-sans-considerants": _without(ARRETE_ANSWER, lambda p: p.startswith("Considérant")),
    "act-nature-inconnue": ARRETE_ANSWER.replace("Nature ACTES : 6.1", "Nature ACTES : 99.9"),
    "delib-complete": DELIBERATION_ANSWER,
    "delib-sans-vote": _without(DELIBERATION_ANSWER, lambda p: p.startswith("Votes")),
    # A model that wrote one 24,000-character line of unclosed emphasis: quadratic for a
    # backtracking inline-markup pattern (review M-5).
    "act-ligne-longue": ARRETE_ANSWER.replace("## ", "*a " * 8_000 + "\n\n## ", 1),
    "delib-tres-longue": _with_many_articles(DELIBERATION_ANSWER, 990),
}


class ActProvider(RecordingProvider):
    """The recording fake provider, plus canned acts for the models named in CANNED."""

    async def chat(self, request: Request) -> StarletteResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        if model not in CANNED:
            return await super().chat(request)
        self.received.append(Received(body, request.headers.get("authorization")))
        self.calls[model] += 1
        text = CANNED[model]
        prompt_tokens = count_message_tokens(body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text.split()),
            "total_tokens": prompt_tokens + len(text.split()),
        }
        if body.get("stream"):
            return StreamingResponse(
                self._lines(model, text, usage), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": "chatcmpl-act",
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

    async def _lines(self, model: str, text: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-act", "object": "chat.completion.chunk", "model": model}
        for line in text.splitlines(keepends=True):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": line}}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            await asyncio.sleep(0)
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\n".encode()
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"


def fake_routing(fake: ActProvider) -> str:
    base = fake.api_base

    def small(model: str) -> dict[str, Any]:
        return deployment(model, base, provider="fake", context_window=SMALL_WINDOW)

    return routing_yaml(
        group("standard", deployment("ok-draft", base, provider="fake"), default=True),
        *(group(model, deployment(model, base, provider="fake")) for model in CANNED),
        group("en-panne", deployment("e500", base, provider="fake")),
        group("synthese", small("ok-synthese"), max_output_tokens=SMALL_OUTPUT),
        group("synthese-flux", small("ok-synthese-flux"), max_output_tokens=SMALL_OUTPUT),
        group("synthese-bail", small("ok-synthese-bail"), max_output_tokens=SMALL_OUTPUT),
        group("synthese-en-panne", small("e500"), max_output_tokens=SMALL_OUTPUT),
    )


# --------------------------------------------------------------------------------------
# Drafts through the API
# --------------------------------------------------------------------------------------


async def post_draft(client: AsyncClient, key: Key, body: dict[str, Any]) -> Response:
    return await client.post("/v1/drafts", headers=key.headers, json=body)


async def created(client: AsyncClient, key: Key, body: dict[str, Any]) -> dict[str, Any]:
    response = await post_draft(client, key, body)
    assert response.status_code == 201, response.text
    draft: dict[str, Any] = response.json()
    return draft


async def read(client: AsyncClient, key: Key, draft_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/drafts/{draft_id}", headers=key.headers)
    assert response.status_code == 200, response.text
    draft: dict[str, Any] = response.json()
    return draft


async def review(
    client: AsyncClient, key: Key, draft_id: str, body: dict[str, Any] | None = None
) -> Response:
    payload = body if body is not None else {"decision": "approved", "reviewer": REVIEWER}
    return await client.post(f"/v1/drafts/{draft_id}/review", headers=key.headers, json=payload)


def names_field(fields: set[str], name: str) -> bool:
    """A validation error names `name` (possibly under its kind: 'arrete.provisions')."""
    return any(f == name or f.endswith("." + name) or f.startswith(name + ".") for f in fields)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, parsed data) of a Server-Sent Events body, in order."""
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
        events.append((name, json.loads("\n".join(data))))
    return events


def codes(draft: dict[str, Any]) -> list[str]:
    return [warning["code"] for warning in draft["warnings"]]


def form_codes(draft: dict[str, Any]) -> list[str]:
    """The warnings about the document's form, without the legal checks (tested on their own
    in tests/drafting/checker/ and the legal set)."""
    return [code for code in codes(draft) if code not in LEGAL_CODES]


def user_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def system_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


def fenced(prompt: str) -> dict[str, Any]:
    """The JSON between <donnees> and </donnees>, the only data of the prompt: the fence
    opens once before the data and closes exactly once."""
    assert prompt.count("</donnees>") == 1, prompt
    inside = prompt.split("<donnees>", 1)[1].split("</donnees>", 1)[0]
    data: dict[str, Any] = json.loads(inside)
    return data


def french_source(characters: int, seed: int = 7) -> str:
    """Varied French paragraphs, like a long council report."""
    rng = random.Random(seed)
    subjects = [
        "Le conseil municipal",
        "La commune",
        "Le syndicat d'eau",
        "L'entreprise titulaire",
        "Le département de la Seine-Maritime",
        "La communauté de communes",
    ]
    verbs = [
        "a décidé de financer",
        "prévoit de rénover",
        "s'engage à entretenir",
        "examine le budget de",
        "a voté la réfection de",
        "étudie la reprise de",
    ]
    objects = [
        "la salle des fêtes",
        "le réseau d'eau potable",
        "l'école communale",
        "les chemins ruraux",
        "la voirie communale",
        "le cimetière",
    ]
    months = ["janvier", "mars", "juin", "octobre"]
    paragraphs: list[str] = []
    size = 0
    while size < characters:
        sentences = " ".join(
            f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} pour un "
            f"montant de {rng.randint(1000, 900000)} euros, avec une échéance fixée au "
            f"{rng.randint(1, 28)} {rng.choice(months)} {rng.randint(2026, 2030)}."
            for _ in range(5)
        )
        paragraph = f"Point {len(paragraphs) + 1}. {sentences}"
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs)[:characters]


def assert_reviewable_act(name: str, request: dict[str, Any], draft: dict[str, Any]) -> None:
    sections = draft["sections"]
    assert sections, draft
    assert sections["title"]
    assert sections["visas"], sections
    assert all(visa.startswith("Vu ") for visa in sections["visas"])
    assert any(CGCT in visa for visa in sections["visas"]), sections["visas"]
    for base in request.get("legal_bases", []):
        assert any(base.rstrip(".").lower() in visa.lower() for visa in sections["visas"]), base
    assert sections["considerants"], sections
    assert all(c.startswith("Considérant") for c in sections["considerants"])
    numbers = [article["number"] for article in sections["articles"]]
    assert numbers == ["1er", *(str(n) for n in range(2, len(numbers) + 1))], numbers
    wanted = request.get("provisions") or request["decisions"]
    # One article per provision or decision, then the execution article.
    assert len(numbers) >= len(wanted) + 1
    assert "exécution" in sections["articles"][-1]["text"]
    if request["kind"] == "arrete":
        for provision in request["provisions"]:
            assert any(provision.rstrip(".") in a["text"] for a in sections["articles"]), provision
    signature = sections["signature"]
    assert signature, sections
    assert f"Fait à {COMMUNE}" in signature, signature
    assert request["signatory"]["name"] in signature
    appeal = [m for m in sections["mentions"] if "recours" in m]
    assert appeal, sections["mentions"]
    assert "tribunal administratif de Rouen" in appeal[-1]
    assert "deux mois" in appeal[-1]
    if request["kind"] == "deliberation":
        vote = request.get("vote")
        if vote:
            expected = f"pour {vote['for']}, contre {vote['against']}"
            assert any(expected in m for m in sections["mentions"]), sections["mentions"]
        assert "Séance du" in draft["text"]
    nature = draft["acte_nature"]
    assert nature, draft
    assert nature["label"], nature
    assert nature["code"].startswith(EXPECTED_NATURE[name]), (name, nature)
    if not EXPECTED_NATURE[name].endswith("."):
        assert nature["code"] == EXPECTED_NATURE[name], (name, nature)
