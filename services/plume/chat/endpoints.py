"""OpenAI-compatible routes: chat completions (plain and streamed) and the model list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from plume.audit.recorder import client_address, digest
from plume.chat.schemas import ChatCompletionRequest, ModelList
from plume.chat.service import CHAT_KIND, ChatService
from plume.credentials.auth import ProviderCaller
from plume.idempotency import request_key
from plume.provider_calls import CallContext
from plume.streaming import SettledStreamingResponse
from plume.transaction import CallSession

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


def _service(request: Request) -> ChatService:
    return ChatService(request.app.state.provider_router, request.app.state.provider_calls)


@router.get("/models", summary="The model groups this tenant may use (OpenAI format)")
async def list_models(request: Request, principal: ProviderCaller) -> ModelList:
    return _service(request).models(principal)


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completion (plain or `stream: true`)",
    response_model=None,
)
async def chat_completions(
    payload: ChatCompletionRequest,
    request: Request,
    principal: ProviderCaller,
    session: CallSession,
) -> JSONResponse | SettledStreamingResponse:
    service = _service(request)
    route = service.plan(principal, payload)
    idempotency_key, request_hash = await request_key(request)
    context = CallContext(
        principal=principal,
        kind=CHAT_KIND,
        route=route,
        request_id=getattr(request.state, "request_id", None),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        estimate=service.estimate(route, payload),
        client_address=client_address(request),
        input_digest=digest(await request.body()),
    )
    await service.calls.before(context, session)
    if payload.stream:
        events, abandon = await service.open_stream(context, payload)
        return SettledStreamingResponse(
            events,
            context=context,
            abandon=abandon,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **context.response_headers(),
            },
        )
    body, completion = await service.complete(context, payload)
    return JSONResponse(
        body,
        headers={
            **service.response_headers(context, completion),
            **context.response_headers(),
        },
    )
