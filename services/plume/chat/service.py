"""Chat completions: policy, routing and the OpenAI-compatible answer shapes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import structlog

from plume.calls.context import CHAT_KIND, Estimate, StoredResponse
from plume.calls.unit import ProviderCall
from plume.chat.schemas import ChatCompletionRequest, ModelCard, ModelList
from plume.credentials.auth import Principal
from plume.errors import InternalError, KindDisabled, PlumeError, openai_error
from plume.routing.policy import RoutingPolicy
from plume.routing.tokens import count_message_tokens
from plume.routing.types import Completion, Route
from plume.web.sse import sse

logger = structlog.get_logger("plume.chat")

# Messages up to this many characters are counted on the event loop (a few milliseconds).
_COUNT_ON_LOOP_CHARS = 16_384


class ChatService:
    def __init__(self, policy: RoutingPolicy) -> None:
        self.policy = policy

    def models(self, principal: Principal) -> ModelList:
        hosting = frozenset(principal.policy.allowed_hosting)
        return ModelList(
            data=[
                ModelCard(id=group.name, created=0, owned_by="plume")
                for group in self.policy.usable_groups(hosting)
            ]
        )

    def route_for(self, principal: Principal, payload: ChatCompletionRequest) -> Route:
        if CHAT_KIND not in principal.policy.allowed_kinds:
            raise KindDisabled(
                "Le dialogue avec l'IA (« chat ») est désactivé par la politique de votre "
                "organisation."
            )
        return self.policy.route(payload.model, frozenset(principal.policy.allowed_hosting))

    async def estimate(self, route: Route, payload: ChatCompletionRequest) -> Estimate:
        """The messages counted (a long request in a worker thread: counting a megabyte takes
        a fraction of a second the event loop owes every other request)."""
        messages = [m.for_provider() for m in payload.messages]
        if sum(len(str(m.get("content") or "")) for m in messages) <= _COUNT_ON_LOOP_CHARS:
            prompt_tokens = count_message_tokens(messages)
        else:
            prompt_tokens = await anyio.to_thread.run_sync(count_message_tokens, messages)
        return Estimate(
            prompt_tokens=prompt_tokens,
            output_tokens=self.policy.output_cap(route, payload.requested_max_tokens()),
        )

    async def complete(
        self, call: ProviderCall, payload: ChatCompletionRequest
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The answer's body and headers, settled with the call."""
        completion = await call.complete(
            [m.for_provider() for m in payload.messages],
            max_tokens=payload.requested_max_tokens(),
            sampling=payload.sampling(),
        )
        body = _completion_body(call, completion)
        headers = response_headers(call.route, completion)
        stored = StoredResponse(
            200, "application/json", json.dumps(body, ensure_ascii=False).encode(), headers
        )
        await call.settle(answer=lambda _: stored)
        return body, headers

    async def open_stream(
        self, call: ProviderCall, payload: ChatCompletionRequest
    ) -> AsyncIterator[bytes]:
        """Start the provider stream: errors before the first token are HTTP errors; then
        the chunks, as OpenAI sends them."""
        deltas = call.stream(
            [m.for_provider() for m in payload.messages],
            max_tokens=payload.requested_max_tokens(),
            sampling=payload.sampling(),
        )
        try:
            first: str | None = await anext(deltas)
        except StopAsyncIteration:
            first = None
        include_usage = bool(payload.stream_options and payload.stream_options.include_usage)
        return _chunks(call, deltas, first, include_usage)


async def _chunks(
    call: ProviderCall, deltas: AsyncIterator[str], first: str | None, include_usage: bool
) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{call.facts.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.route.group.name,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return call.sent(sse({**base, "choices": [choice]}))

    try:
        yield chunk({"role": "assistant", "content": first or ""})
        async for delta in deltas:
            yield chunk({"content": delta})
        completion = call.streamed()
        yield chunk({}, (completion.finish_reason if completion else None) or "stop")
        if include_usage and completion is not None:
            usage = {
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                "total_tokens": completion.total_tokens,
            }
            yield call.sent(sse({**base, "choices": [], "usage": usage}))
        await call.settle(
            answer=lambda _: StoredResponse(
                200,
                "text/event-stream",
                call.transcript() + sse("[DONE]"),
                response_headers(call.route, completion),
            )
        )
        yield sse("[DONE]")
    except PlumeError as error:
        await call.fail(error)
        yield sse(openai_error(error))
    except Exception as error:
        logger.exception("chat_stream_error")
        await call.fail(error)
        yield sse(openai_error(InternalError()))


def response_headers(route: Route, completion: Completion | None) -> dict[str, str]:
    headers = {"X-Plume-Model-Group": route.group.name}
    if completion is not None:
        headers["X-Plume-Provider"] = completion.provider
    return headers


def _completion_body(call: ProviderCall, completion: Completion) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{call.facts.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.route.group.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.total_tokens,
        },
    }
