"""Chat completions: policy, routing and the OpenAI-compatible answer shapes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from plume.chat.schemas import ChatCompletionRequest, ModelCard, ModelList
from plume.credentials.auth import Principal
from plume.errors import InternalError, KindDisabled, PlumeError, openai_error
from plume.provider_calls import CallContext, CallOutcome, Estimate, ProviderCalls, StoredResponse
from plume.routing.router import Completion, ProviderRouter, Route, StreamState
from plume.routing.tokens import count_message_tokens

CHAT_KIND = "chat"
logger = structlog.get_logger("plume.chat")


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


class ChatService:
    def __init__(self, router: ProviderRouter, calls: ProviderCalls) -> None:
        self.router = router
        self.calls = calls

    def models(self, principal: Principal) -> ModelList:
        hosting = frozenset(principal.policy.allowed_hosting)
        return ModelList(
            data=[
                ModelCard(id=group.name, created=0, owned_by="plume")
                for group in self.router.usable_groups(hosting)
            ]
        )

    def plan(self, principal: Principal, payload: ChatCompletionRequest) -> Route:
        if CHAT_KIND not in principal.policy.allowed_kinds:
            raise KindDisabled(
                "Le dialogue avec l'IA (« chat ») est désactivé par la politique de votre "
                "organisation."
            )
        return self.router.route(payload.model, frozenset(principal.policy.allowed_hosting))

    async def complete(
        self, context: CallContext, payload: ChatCompletionRequest
    ) -> tuple[dict[str, Any], Completion]:
        messages = [m.for_provider() for m in payload.messages]
        try:
            completion = await self.router.complete(
                context.route,
                messages,
                max_tokens=payload.requested_max_tokens(),
                sampling=payload.sampling(),
            )
        except asyncio.CancelledError:
            await self.calls.after(context, CallOutcome("client_disconnected"))
            raise
        except Exception as error:
            code = error.code if isinstance(error, PlumeError) else "internal_error"
            await self.calls.after(context, CallOutcome("failure", error_code=code))
            raise
        body = self._completion_body(context, completion)
        context.response = StoredResponse(
            200,
            "application/json",
            json.dumps(body, ensure_ascii=False).encode(),
            self.response_headers(context, completion),
        )
        await self.calls.after(context, CallOutcome("success", completion))
        return body, completion

    def estimate(self, route: Route, payload: ChatCompletionRequest) -> Estimate:
        messages = [m.for_provider() for m in payload.messages]
        return Estimate(
            prompt_tokens=count_message_tokens(messages),
            output_tokens=self.router.output_cap(route, payload.requested_max_tokens()),
        )

    @staticmethod
    def response_headers(context: CallContext, completion: Completion | None) -> dict[str, str]:
        headers = {"X-Plume-Model-Group": context.route.group.name}
        if completion is not None:
            headers["X-Plume-Provider"] = completion.provider
        return headers

    def _completion_body(self, context: CallContext, completion: Completion) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{context.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": context.route.group.name,
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

    async def open_stream(
        self, context: CallContext, payload: ChatCompletionRequest
    ) -> tuple[AsyncIterator[bytes], Callable[[], Awaitable[None]]]:
        """Start the provider stream; errors before the first token become HTTP errors.

        Returns the events, and what to do if the client leaves before they are read: close
        the provider stream and settle the call with what it produced."""
        messages = [m.for_provider() for m in payload.messages]
        state = StreamState()
        deltas = self.router.stream(
            context.route,
            messages,
            state,
            max_tokens=payload.requested_max_tokens(),
            sampling=payload.sampling(),
        )
        try:
            first: str | None = await anext(deltas)
        except StopAsyncIteration:
            first = None
        except asyncio.CancelledError:
            await self.calls.after(context, CallOutcome("client_disconnected"))
            raise
        except Exception as error:
            code = error.code if isinstance(error, PlumeError) else "internal_error"
            await self.calls.after(context, CallOutcome("failure", error_code=code))
            raise
        include_usage = bool(payload.stream_options and payload.stream_options.include_usage)
        prompt_estimate = count_message_tokens(messages)

        async def abandon() -> None:
            await deltas.aclose()  # type: ignore[attr-defined]
            completion = self.router.settle_stream(state, prompt_estimate, context.started)
            await self.calls.after(context, CallOutcome("client_disconnected", completion))

        events = self._events(context, deltas, first, state, prompt_estimate, include_usage)
        return events, abandon

    async def _events(
        self,
        context: CallContext,
        deltas: AsyncIterator[str],
        first: str | None,
        state: StreamState,
        prompt_estimate: int,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{context.request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": context.route.group.name,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        outcome = "failure"
        error_code: str | None = None
        # What the client received, kept for the retries of its Idempotency-Key.
        sent: list[bytes] = []

        def sending(event: bytes) -> bytes:
            sent.append(event)
            return event

        try:
            yield sending(chunk({"role": "assistant", "content": first or ""}))
            async for delta in deltas:
                yield sending(chunk({"content": delta}))
            yield sending(chunk({}, state.finish_reason or "stop"))
            completion = self.router.settle_stream(state, prompt_estimate, context.started)
            if include_usage and completion is not None:
                usage = {
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "total_tokens": completion.total_tokens,
                }
                yield sending(_sse({**base, "choices": [], "usage": usage}))
            outcome = "success"
            context.response = StoredResponse(
                200,
                "text/event-stream",
                b"".join(sent) + _sse("[DONE]"),
                self.response_headers(context, completion),
            )
            yield _sse("[DONE]")
        except PlumeError as error:
            error_code = error.code
            yield _sse(openai_error(error))
        except Exception:
            logger.exception("chat_stream_error")
            error_code = "internal_error"
            yield _sse(openai_error(InternalError()))
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "client_disconnected"
            await deltas.aclose()  # type: ignore[attr-defined]
            raise
        finally:
            completion = self.router.settle_stream(state, prompt_estimate, context.started)
            await self.calls.after(
                context,
                CallOutcome(outcome, completion, error_code),  # type: ignore[arg-type]
            )
