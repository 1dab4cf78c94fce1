"""OpenAI-compatible routes: chat completions (plain and streamed) and the model list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from plume.calls.context import CHAT_KIND
from plume.calls.dependencies import Calls
from plume.calls.privacy import PSEUDONYMISED_HEADER
from plume.calls.streaming import SettledStreamingResponse
from plume.calls.unit import ProviderCall
from plume.chat.schemas import ChatCompletionRequest, ModelList
from plume.chat.service import ChatService
from plume.credentials.auth import ProviderCaller
from plume.web.openapi import event_stream, schema_ref

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

# One event of a streamed completion: a chunk, an error, or the closing `[DONE]`.
_CHUNK_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"const": "message"},
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "anyOf": [
                            {
                                "type": "object",
                                "required": ["object", "choices"],
                                "properties": {"object": {"const": "chat.completion.chunk"}},
                            },
                            schema_ref("OpenAIError"),
                        ]
                    },
                },
            ]
        },
    },
}


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat
    return service


@router.get("/models", summary="The model groups this tenant may use (OpenAI format)")
async def list_models(request: Request, principal: ProviderCaller) -> ModelList:
    return _service(request).models(principal)


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completion (plain or `stream: true`)",
    response_model=None,
    responses=event_stream(
        "An OpenAI `chat.completion` (application/json), or with `stream: true` its "
        "`chat.completion.chunk` events ending with `data: [DONE]` (an error after the first "
        "event is a last event of OpenAI's error shape)",
        _CHUNK_EVENT,
    ),
)
async def chat_completions(
    payload: ChatCompletionRequest, request: Request, principal: ProviderCaller, calls: Calls
) -> JSONResponse | SettledStreamingResponse:
    service = _service(request)
    route = service.route_for(principal, payload)
    estimate = await service.estimate(route, payload)
    fields = {"messages": [m.for_provider() for m in payload.messages]}
    async with calls.open(
        principal, kind=CHAT_KIND, route=route, estimate=estimate, fields=fields
    ) as call:
        if payload.stream:
            chunks = await service.open_stream(call, payload)
            # Known once the stream has started: its messages were protected before.
            return call.streaming_response(chunks, {**call.response_headers(), **_privacy(call)})
        body, headers = await service.complete(call, payload)
        return JSONResponse(body, headers={**headers, **call.response_headers(), **_privacy(call)})


def _privacy(call: ProviderCall) -> dict[str, str]:
    """How many residents' identifiers the provider saw as placeholders (docs/privacy.md)."""
    if call.privacy.mode != "pseudonymise":
        return {}
    return {PSEUDONYMISED_HEADER: str(call.privacy.count)}
