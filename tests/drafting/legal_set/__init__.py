"""The legal test set (cases.yaml): requests with the warnings their drafts must and must not
raise, drafted offline or given as a model could write them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from plume.drafting.checker import LEGAL_CODES
from plume.drafting.document import TenantIdentity
from plume.drafting.finishing import finish_document
from plume.drafting.offline import compose
from plume.drafting.schemas import DraftRequest, request_fields

CASES_FILE = Path(__file__).with_name("cases.yaml")
COMMUNE = "La Haye"
_REQUEST = TypeAdapter(DraftRequest)


@dataclass(frozen=True, slots=True)
class LegalCase:
    name: str
    request: dict[str, Any]
    must: frozenset[str]
    must_not: frozenset[str]
    text: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    known_miss: frozenset[str] = frozenset()
    known_false: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return str(self.request["kind"])


@cache
def cases() -> tuple[LegalCase, ...]:
    raw = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return tuple(
        LegalCase(
            name=item["name"],
            request=item["request"],
            must=frozenset(item.get("must") or ()),
            must_not=frozenset(item.get("must_not") or ()),
            text=item.get("text"),
            identity=item.get("identity") or {},
            known_miss=frozenset(item.get("known_miss") or ()),
            known_false=frozenset(item.get("known_false") or ()),
        )
        for item in raw["cases"]
    )


def raised(case: LegalCase) -> list[str]:
    """The codes the draft of a case raises, as the API would answer them."""
    # The request goes through the API's schema: a case the API would refuse is a broken case.
    fields = request_fields(_REQUEST.validate_python(case.request))
    identity = TenantIdentity(commune_name=COMMUNE, **case.identity)
    offline = case.text is None
    text = case.text
    if text is None:
        text = compose(case.kind, {"request": fields, "identity": identity.model_dump()})
        assert text is not None, case.name
    document = finish_document(case.kind, text, fields, identity, offline=offline)
    return [w.code for w in document.warnings if w.code in LEGAL_CODES]
