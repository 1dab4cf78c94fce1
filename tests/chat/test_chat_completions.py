"""The OpenAI-compatible API through the application: POST /v1/chat/completions (plain and
streamed) and GET /v1/models, routed to the local fake provider; without a routing file,
the offline provider; authentication and policy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx import AsyncClient

from plume.config import Settings
from plume.routing.offline import CHAT_ANSWER
from tests.chat.helpers import ALL_KINDS_BUT_CHAT, WORDS, chat_router
from tests.support.chat import chat_body, sse_data
from tests.support.clients import AppFactory, client_for
from tests.support.factories import Factory, Key
from tests.support.french import looks_french
from tests.support.problems import assert_openai_error
from tests.support.providers import (
    ANSWER,
    RecordingProvider,
)

PROVIDER_VARIABLES = (
    "MISTRAL_API_KEY",
    "ALBERT_API_KEY",
    "OPENAI_API_KEY",
    "OVHCLOUD_API_KEY",
    "SCALEWAY_API_KEY",
    "ANTHROPIC_API_KEY",
)


@pytest.fixture
def app_overrides(fake: RecordingProvider) -> dict[str, Any]:
    return {"provider_router": chat_router(fake)}


async def post_chat(client: AsyncClient, key: Key | None, body: Any) -> httpx.Response:
    headers = key.headers if key is not None else {}
    if isinstance(body, (bytes, str)):
        return await client.post(
            "/v1/chat/completions",
            headers={**headers, "Content-Type": "application/json"},
            content=body,
        )
    return await client.post("/v1/chat/completions", headers=headers, json=body)


def chunks_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON chunks of an OpenAI SSE answer, which must end with `data: [DONE]`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    payloads = sse_data(response.text)
    assert payloads[-1] == "[DONE]", payloads[-3:]
    assert payloads.count("[DONE]") == 1
    return [json.loads(payload) for payload in payloads[:-1]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"]
    )


# --------------------------------------------------------------------------------------
# Plain and streamed completions
# --------------------------------------------------------------------------------------


async def test_a_plain_completion_has_openais_shape(client: AsyncClient, agent: Key) -> None:
    response = await post_chat(client, agent, chat_body("assistant", "Bonjour"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == "assistant"
    assert len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": ANSWER}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == len(WORDS)  # the provider's own figures
    assert usage["prompt_tokens"] == 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_the_default_group_answers_a_request_without_model(
    client: AsyncClient, agent: Key
) -> None:
    response = await post_chat(client, agent, chat_body(None))
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "assistant"
    assert response.json()["choices"][0]["message"]["content"] == ANSWER


async def test_the_request_reaches_the_provider_with_its_messages_and_sampling(
    client: AsyncClient, agent: Key, fake: RecordingProvider
) -> None:
    messages = [
        {"role": "system", "content": "Tu es l'assistant de la mairie."},
        {"role": "user", "content": [{"type": "text", "text": "Horaires de la mairie ?"}]},
    ]
    response = await post_chat(
        client, agent, {"model": "assistant", "messages": messages, "temperature": 0.2}
    )
    assert response.status_code == 200, response.text
    sent = fake.bodies("ok-chat")[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][0]["content"] == "Tu es l'assistant de la mairie."
    assert "Horaires de la mairie ?" in json.dumps(sent["messages"][1], ensure_ascii=False)
    assert sent["temperature"] == 0.2


@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_streamed_completion_is_openais_sse(
    client: AsyncClient, agent: Key, include_usage: bool
) -> None:
    body = chat_body("assistant", "Bonjour", stream=True)
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    response = await post_chat(client, agent, body)
    chunks = chunks_of(response)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "assistant"
        assert chunk["id"] == chunks[0]["id"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == ANSWER
    with_choices = [chunk for chunk in chunks if chunk["choices"]]
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in with_choices[:-1])
    usage_chunks = [chunk for chunk in chunks if chunk.get("usage")]
    if include_usage:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"] == []
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] == len(WORDS)
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    else:
        assert usage_chunks == []
        assert all(chunk["choices"] for chunk in chunks)


async def test_unknown_request_fields_are_ignored(client: AsyncClient, agent: Key) -> None:
    body = chat_body(
        "assistant",
        logprobs=False,
        user="agent-42",
        foo=1,
        metadata={"dossier": "voirie"},
        parallel_tool_calls=False,
        service_tier="auto",
        store=False,
        response_format={"type": "text"},
        top_p=0.9,
        stop=["\n\n"],
        seed=7,
    )
    body["messages"][0]["refusal"] = None
    response = await post_chat(client, agent, body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == ANSWER


INVALID: dict[str, Any] = {
    "malformed JSON": b'{"model": "assistant", "messages": [',
    "not an object": b'["Bonjour"]',
    "missing messages": {"model": "assistant"},
    "empty messages": {"model": "assistant", "messages": []},
    "messages not a list": {"model": "assistant", "messages": "Bonjour"},
    "unknown role": {"messages": [{"role": "mayor", "content": "Bonjour"}]},
    "content of the wrong type": {"messages": [{"role": "user", "content": 42}]},
    "temperature of the wrong type": {**chat_body("assistant"), "temperature": "tiède"},
    "stream of the wrong type": {**chat_body("assistant"), "stream": "peut-être"},
    "negative max_tokens": {**chat_body("assistant"), "max_tokens": -5},
    "model of the wrong type": {**chat_body(), "model": ["assistant"]},
}


@pytest.mark.parametrize("body", list(INVALID.values()), ids=list(INVALID))
async def test_invalid_requests_are_422_in_openai_shape(
    client: AsyncClient, agent: Key, fake: RecordingProvider, body: Any
) -> None:
    received = len(fake.received)
    response = await post_chat(client, agent, body)
    assert_openai_error(response, 422, "invalid_request")
    assert not response.headers["content-type"].startswith("application/problem+json")
    assert len(fake.received) == received


async def test_an_unknown_model_is_404_in_openai_shape(
    client: AsyncClient, agent: Key, fake: RecordingProvider
) -> None:
    received = len(fake.received)
    for stream in (False, True):
        response = await post_chat(client, agent, chat_body("gpt-4o", stream=stream))
        error = assert_openai_error(response, 404, "not_found")
        assert "gpt-4o" in error["message"]
    assert len(fake.received) == received


# --------------------------------------------------------------------------------------
# Without a routing file: the built-in configuration and the offline provider
# --------------------------------------------------------------------------------------


@pytest.fixture
async def offline_client(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, make_app: AppFactory
) -> AsyncIterator[AsyncClient]:
    """The application as create_app builds it (no routing file, no provider key)."""
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert settings.models_file is None
    async with client_for(make_app(provider_router=None)) as http:
        yield http


async def test_without_routing_file_chat_says_honestly_that_no_model_is_configured(
    offline_client: AsyncClient, agent: Key
) -> None:
    response = await post_chat(offline_client, agent, chat_body(None, "Rédige un arrêté."))
    assert response.status_code == 200, response.text
    assert response.headers["x-plume-provider"] == "offline"
    body = response.json()
    text = body["choices"][0]["message"]["content"]
    assert text == CHAT_ANSWER
    assert "sans modèle de langue" in text
    assert looks_french(text)
    assert body["model"] == "offline"
    assert body["usage"]["prompt_tokens"] > 0
    assert body["usage"]["completion_tokens"] > 0
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )

    streamed = await post_chat(
        offline_client,
        agent,
        chat_body("offline", stream=True, stream_options={"include_usage": True}),
    )
    chunks = chunks_of(streamed)
    assert streamed_text(chunks) == CHAT_ANSWER
    assert chunks[-1]["usage"]["completion_tokens"] > 0

    models = await offline_client.get("/v1/models", headers=agent.headers)
    assert models.status_code == 200, models.text
    assert [m["id"] for m in models.json()["data"]] == ["offline"]


# --------------------------------------------------------------------------------------
# Authentication and policy
# --------------------------------------------------------------------------------------


async def test_no_or_bad_key_is_401_in_openai_shape(client: AsyncClient) -> None:
    well_formed_unknown = "plm_" + "A" * 43
    for headers in (
        {},
        {"Authorization": "Bearer pas-une-cle"},
        {"Authorization": f"Bearer {well_formed_unknown}"},
        {"Authorization": f"Basic {well_formed_unknown}"},
    ):
        for method, path, body in (
            ("POST", "/v1/chat/completions", chat_body("assistant")),
            ("GET", "/v1/models", None),
        ):
            response = await client.request(method, path, headers=headers, json=body)
            assert_openai_error(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"].lower().startswith("bearer")


async def test_a_revoked_key_is_401(client: AsyncClient, factory: Factory, agent: Key) -> None:
    operator = await factory.operator_key()
    revoked = await client.delete(f"/v1/admin/api-keys/{agent.id}", headers=operator.headers)
    assert revoked.status_code == 204, revoked.text
    response = await post_chat(client, agent, chat_body("assistant"))
    assert_openai_error(response, 401, "unauthenticated")


async def test_chat_switched_off_by_policy_is_403_kind_disabled(
    client: AsyncClient, factory: Factory, fake: RecordingProvider
) -> None:
    received = len(fake.received)
    muted = await factory.key(await factory.commune(allowed_kinds=ALL_KINDS_BUT_CHAT))
    epci = await factory.epci(allowed_kinds=["arrete"])
    inherited = await factory.key(await factory.commune(parent=epci), "tenant_admin")
    for key in (muted, inherited):
        for stream in (False, True):
            response = await post_chat(client, key, chat_body("assistant", stream=stream))
            assert_openai_error(response, 403, "kind_disabled")
    assert len(fake.received) == received

    # The operator switches chat off for a commune that was using it: refused at once.
    commune = await factory.commune("Commune bientôt muette")
    agent = await factory.key(commune)
    assert (await post_chat(client, agent, chat_body("assistant"))).status_code == 200
    operator = await factory.operator_key()
    patched = await client.patch(
        f"/v1/admin/organizations/{commune.id}",
        headers=operator.headers,
        json={"policy": {"allowed_kinds": ["arrete", "courrier"]}},
    )
    assert patched.status_code == 200, patched.text
    assert_openai_error(
        await post_chat(client, agent, chat_body("assistant")), 403, "kind_disabled"
    )


async def test_models_lists_only_the_groups_the_tenants_hosting_policy_can_use(
    client: AsyncClient, factory: Factory
) -> None:
    european = await factory.key(await factory.commune(allowed_hosting=["fr", "eu"]))
    french = await factory.key(await factory.commune(allowed_hosting=["fr"]), "tenant_admin")
    expected = [
        (european, ["assistant", "relay", "drip", "europe"]),
        (french, ["assistant", "relay", "drip"]),
    ]
    for key, groups in expected:
        response = await client.get("/v1/models", headers=key.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["object"] == "list"
        assert [model["id"] for model in body["data"]] == groups
        for model in body["data"]:
            assert model["object"] == "model"
            assert isinstance(model["created"], int)
            assert model["owned_by"]
        # What is listed can be used; what is not is refused for its hosting.
        for name in ("europe", "abroad"):
            answer = await post_chat(client, key, chat_body(name))
            if name in groups:
                assert answer.status_code == 200, answer.text
            else:
                assert_openai_error(answer, 403, "hosting_not_allowed")
