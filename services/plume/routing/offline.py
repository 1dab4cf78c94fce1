"""The offline provider: answers through the same LiteLLM Router with no network and no AI.

Plume stays usable with no API key at all, and the offline provider is the last-resort
fallback. It never pretends to be a model: for plain chat it says that no language model is
configured; for a drafting prompt, a composer the application registers (the drafting
package's) builds the document from the request's own fields.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

from plume.routing.tokens import count_message_tokens, count_text_tokens
from plume.routing.types import REVEAL

PROVIDER_NAME = "plume_offline"

CHAT_ANSWER = (
    "Plume fonctionne actuellement sans modèle de langue : aucun fournisseur d'IA n'est "
    "configuré ou autorisé pour votre organisation, ou aucun n'a pu répondre. Je ne peux donc "
    "pas rédiger de réponse à votre message. Les modèles de documents (arrêtés, délibérations, "
    "courriers…) restent disponibles : ils sont construits à partir de vos propres éléments, "
    "sans IA. Contactez Seine-Maritime Numérique pour activer un fournisseur."
)

# Given the messages, the document text, or None if the composer does not recognise them.
Composer = Callable[[list[dict[str, Any]]], str | None]


def _revealed(messages: list[dict[str, Any]], reveal: Callable[[str], str] | None) -> list[Any]:
    if reveal is None:
        return messages
    return [
        {**m, "content": reveal(m["content"])} if isinstance(m.get("content"), str) else m
        for m in messages
    ]


class OfflineProvider(CustomLLM):
    def __init__(self) -> None:
        super().__init__()
        self.composers: list[Composer] = []

    def answer(self, messages: list[dict[str, Any]]) -> str:
        for composer in self.composers:
            text = composer(messages)
            if text is not None:
                return text
        return CHAT_ANSWER

    def _answer_with_usage(self, messages: list[dict[str, Any]]) -> tuple[str, Usage]:
        text = self.answer(messages)
        prompt = count_message_tokens(messages)
        completion = count_text_tokens(text)
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        return text, usage

    async def _answer_off_the_loop(self, messages: list[dict[str, Any]]) -> tuple[str, Usage]:
        # Composing a document and counting a long prompt take CPU time: in a worker thread,
        # the event loop goes on serving other requests meanwhile.
        clear = _revealed(messages, REVEAL.get())
        return await anyio.to_thread.run_sync(self._answer_with_usage, clear)

    async def acompletion(
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> ModelResponse:
        model_response: ModelResponse = kwargs.get("model_response") or args[2]
        text, usage = await self._answer_off_the_loop(messages)
        model_response.choices[0].message.content = text
        model_response.choices[0].finish_reason = "stop"
        model_response.model = model
        model_response.created = int(time.time())
        model_response.usage = usage  # type: ignore[attr-defined]
        return model_response

    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        text, usage = await self._answer_off_the_loop(messages)
        pieces = _pieces(text)
        for piece in pieces:
            yield GenericStreamingChunk(
                text=piece,
                is_finished=False,
                finish_reason="",
                usage=None,
                index=0,
                tool_use=None,
            )
        yield GenericStreamingChunk(
            text="",
            is_finished=True,
            finish_reason="stop",
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            index=0,
            tool_use=None,
        )


def _pieces(text: str, size: int = 80) -> list[str]:
    """Split on line ends and spaces so that streamed pieces read naturally."""
    pieces: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) > size and current:
            pieces.append(current + " ")
            current = word
        else:
            current = candidate
    if current:
        pieces.append(current)
    return pieces
