"""French prompts, rendered from the Jinja2 templates beside this module.

The request's content travels as JSON inside <donnees>…</donnees>: the templates tell the model
it is data, never instructions, and the closing tag can never appear inside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from plume.drafting.document import ACT_KINDS, TenantIdentity
from plume.drafting.legal_bases import expected_visas, matters_for_request
from plume.drafting.publicity import act_life

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - prompts are plain text for a model, not HTML
    keep_trailing_newline=True,
    auto_reload=False,  # shipped with the package: no stat of the files at every prompt
)
_KIND_LINE = re.compile(r"^Type de document : (\w+)\s*$", re.MULTILINE)


def fence(payload: dict[str, Any]) -> str:
    """JSON that cannot close the data fence: '</' is written '<\\/' (still valid JSON)."""
    return json.dumps(payload, ensure_ascii=False, indent=1).replace("</", "<\\/")


def build_messages(
    kind: str,
    identity: TenantIdentity,
    request: dict[str, Any],
    *,
    template: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    data = fence({"kind": kind, "identity": identity.model_dump(), "request": request})
    context = {
        "identity": identity,
        "request": request,
        "kind": kind,
        "data": data,
        **_act_context(kind, identity, request),
        **(extra or {}),
    }
    system = _TEMPLATES.get_template("system.j2").render(**context)
    user = _TEMPLATES.get_template(f"{template or kind}.j2").render(**context)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _act_context(kind: str, identity: TenantIdentity, request: dict[str, Any]) -> dict[str, Any]:
    """For an act: the visas its matter needs (data/legal_bases.yaml) and how it becomes
    exécutoire (publicity, transmission), which the templates spell out for the model."""
    if kind not in ACT_KINDS:
        return {}
    matters = matters_for_request(kind, request)
    return {
        "bases": expected_visas(matters),
        "mentions": [mention for matter in matters for mention in matter.mentions],
        "life": act_life(kind, matters, identity.model_dump()),
    }


def read_fenced_request(messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The kind and data of a drafting prompt, as the offline provider needs them."""
    if not messages:
        return None
    system = str(messages[0].get("content") or "")
    kind = _KIND_LINE.search(system)
    data_text = _fenced(str(messages[-1].get("content") or ""))
    if kind is None or data_text is None:
        return None
    try:
        data = json.loads(data_text)
    except json.JSONDecodeError:
        return None
    return (kind.group(1), data) if isinstance(data, dict) else None


def _fenced(prompt: str) -> str | None:
    """What the first data fence holds. Found with str.find: a lazy pattern tried the closing
    tag after every character, reading each run of spaces again from each of its positions."""
    start = prompt.find("<donnees>")
    end = prompt.find("</donnees>", start + len("<donnees>")) if start != -1 else -1
    return None if end == -1 else prompt[start + len("<donnees>") : end].strip()
