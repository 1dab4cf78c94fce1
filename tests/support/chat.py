"""OpenAI's chat shapes as the tests send and read them."""

from __future__ import annotations

from typing import Any


def chat_body(model: str | None = None, content: str = "Bonjour", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], **extra}
    if model is not None:
        body["model"] = model
    return body


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of a Server-Sent Events body, in order."""
    events = [block for block in text.split("\n\n") if block.strip()]
    payloads: list[str] = []
    for block in events:
        lines = [line for line in block.splitlines() if line.startswith("data:")]
        assert lines, f"an event without data: {block!r}"
        payloads.append("\n".join(line.removeprefix("data:").strip() for line in lines))
    return payloads
