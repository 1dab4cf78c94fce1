"""Drafting requests, one schema per document kind, and the draft as the API answers it."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from plume.drafting.document import ActeNature, DraftWarning, Sections

SUBJECT_MAX = 500
TEXT_MAX = 20_000
ITEM_MAX = 5_000
SOURCE_MAX = 8 * 1024 * 1024  # the body limit of a synthèse request is the real bound

Subject = Annotated[str, Field(min_length=1, max_length=SUBJECT_MAX)]
LongText = Annotated[str, Field(min_length=1, max_length=TEXT_MAX)]
Item = Annotated[str, Field(min_length=1, max_length=ITEM_MAX)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("Ne peut pas être vide.")
    return value.strip()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Signatory(_Strict):
    name: ShortText
    title: ShortText

    _clean = field_validator("name", "title")(_not_blank)


class Recipient(_Strict):
    name: ShortText
    address: Annotated[str, Field(max_length=1000)] | None = None

    _clean = field_validator("name")(_not_blank)


class Vote(_Strict):
    for_: int = Field(alias="for", ge=0, le=1000)
    against: int = Field(ge=0, le=1000)
    abstentions: int = Field(default=0, ge=0, le=1000)


class Proxy(_Strict):
    """A pouvoir: the absent member (`grantor`) and the member present who votes for them
    (`holder`), CGCT L. 2121-20."""

    grantor: ShortText
    holder: ShortText

    _clean = field_validator("grantor", "holder")(_not_blank)


class Session(_Strict):
    """The séance of the council, as the registre shows it (CGCT L. 2121-10 to L. 2121-26)."""

    convocation_date: date | None = None
    start_time: time | None = Field(
        default=None, description="The hour the séance opened (e.g. `20:00`)."
    )
    members_in_office: int | None = Field(default=None, ge=1, le=200)
    present: int | None = Field(default=None, ge=0, le=200)
    represented: int | None = Field(default=None, ge=0, le=200)
    secretary: ShortText | None = None
    vote_mode: Literal["main_levee", "scrutin_public", "scrutin_secret"] | None = None
    proxies: list[Proxy] | None = Field(
        default=None, max_length=100, description="The pouvoirs, one per member represented."
    )

    @field_validator("present")
    @classmethod
    def _present_in_office(cls, value: int | None, info: ValidationInfo) -> int | None:
        in_office = info.data.get("members_in_office")
        if value is not None and in_office is not None and value > in_office:
            raise ValueError(
                f"Les présents ({value}) dépassent les conseillers en exercice ({in_office})."
            )
        return value

    @field_validator("represented")
    @classmethod
    def _proxies(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return value
        present, in_office = info.data.get("present"), info.data.get("members_in_office")
        # Each member present holds at most one pouvoir (CGCT L. 2121-20).
        if present is not None and value > present:
            raise ValueError(
                f"Les représentés ({value}) dépassent les présents ({present}) : un conseiller "
                "présent ne peut détenir qu'un seul pouvoir."
            )
        if present is not None and in_office is not None and present + value > in_office:
            raise ValueError(
                f"Présents et représentés ({present + value}) dépassent les conseillers en "
                f"exercice ({in_office})."
            )
        return value

    @field_validator("secretary")
    @classmethod
    def _secretary(cls, value: str | None) -> str | None:
        return _not_blank(value) if value is not None else None

    @field_validator("proxies")
    @classmethod
    def _one_proxy_per_member_represented(
        cls, value: list[Proxy] | None, info: ValidationInfo
    ) -> list[Proxy] | None:
        represented = info.data.get("represented")
        if value is not None and represented is not None and len(value) != represented:
            raise ValueError(
                f"{len(value)} pouvoir(s) pour {represented} conseiller(s) représenté(s) : "
                "indiquez un pouvoir par conseiller représenté."
            )
        holders = [proxy.holder.casefold() for proxy in value or []]
        if len(holders) != len(set(holders)):
            raise ValueError("Un conseiller présent ne peut détenir qu'un seul pouvoir.")
        return value


class _DraftBase(_Strict):
    model_group: Annotated[str, Field(max_length=64)] | None = None
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, gt=0, le=64_000)

    @field_validator("subject", "context", mode="after", check_fields=False)
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        return _not_blank(value)

    @field_validator("number", check_fields=False)
    @classmethod
    def _number_not_blank(cls, value: str | None) -> str | None:
        return _not_blank(value) if value is not None else None

    @field_validator(
        "provisions", "decisions", "points", "key_points", "legal_bases", check_fields=False
    )
    @classmethod
    def _items_not_blank(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value]
        if any(not item for item in cleaned):
            raise ValueError("Un élément de la liste est vide.")
        return cleaned


ActNumber = Annotated[str, Field(min_length=1, max_length=50)]


class ArreteRequest(_DraftBase):
    kind: Literal["arrete"]
    number: ActNumber | None = None
    subject: Subject
    context: LongText = Field(description="The facts that motivate the act")
    provisions: list[Item] = Field(min_length=1, max_length=50)
    legal_bases: list[Item] = Field(default_factory=list, max_length=30)
    start_date: date | None = None
    end_date: date | None = None
    location: Annotated[str, Field(max_length=500)] | None = None
    signatory: Signatory | None = None

    @field_validator("end_date")
    @classmethod
    def _dates_in_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if value is not None and start is not None and value < start:
            raise ValueError("La date de fin précède la date de début.")
        return value


class DeliberationRequest(_DraftBase):
    kind: Literal["deliberation"]
    number: ActNumber | None = None
    subject: Subject
    context: LongText = Field(description="The exposé")
    decisions: list[Item] = Field(min_length=1, max_length=50)
    session_date: date | None = None
    session: Session | None = None
    vote: Vote | None = None
    legal_bases: list[Item] = Field(default_factory=list, max_length=30)
    rapporteur: Annotated[str, Field(max_length=200)] | None = None
    signatory: Signatory | None = None

    @field_validator("session")
    @classmethod
    def _convened_before(cls, value: Session | None, info: ValidationInfo) -> Session | None:
        held = info.data.get("session_date")
        if value is not None and value.convocation_date and held and value.convocation_date > held:
            raise ValueError("La date de convocation (convocation_date) suit la date de séance.")
        return value

    @field_validator("vote")
    @classmethod
    def _votes_counted(cls, value: Vote | None, info: ValidationInfo) -> Vote | None:
        session = info.data.get("session")
        if value is None or session is None or session.present is None:
            return value
        voting = session.present + (session.represented or 0)
        cast = value.for_ + value.against + value.abstentions
        if cast > voting:
            raise ValueError(
                f"Pour, contre et abstentions ({cast}) dépassent les présents et représentés "
                f"({voting})."
            )
        return value


class CourrierRequest(_DraftBase):
    kind: Literal["courrier"]
    subject: Subject
    recipient: Recipient
    points: list[Item] = Field(min_length=1, max_length=30)
    tone: Literal["formel", "cordial"] = "formel"
    signatory: Signatory | None = None


class BulletinArticleRequest(_DraftBase):
    kind: Literal["bulletin_article"]
    subject: Subject
    key_points: list[Item] = Field(min_length=1, max_length=30)
    length_words: int | None = Field(default=None, ge=30, le=3000)
    audience: Annotated[str, Field(max_length=200)] | None = None


class SyntheseRequest(_DraftBase):
    kind: Literal["synthese"]
    source_text: str = Field(min_length=1, max_length=SOURCE_MAX)
    target_words: int | None = Field(default=None, ge=30, le=5000)
    format: Literal["points_cles", "resume"] = "resume"


DraftRequest = Annotated[
    ArreteRequest
    | DeliberationRequest
    | CourrierRequest
    | BulletinArticleRequest
    | SyntheseRequest,
    Field(discriminator="kind"),
]


class Reviewer(_Strict):
    name: ShortText
    title: ShortText

    _clean = field_validator("name", "title")(_not_blank)


class ReviewRequest(_Strict):
    decision: Literal["approved", "rejected"]
    reviewer: Reviewer | None = Field(
        default=None,
        description="Who reviews, as declared by an API key or a client (required then); a "
        "signed-in agent sends none: its own record names it (verified)",
    )
    comment: Annotated[str, Field(max_length=5000)] | None = None


EDIT_MAX = 100_000


class EditRequest(_Strict):
    """A draft's text as the person reviewing it corrected it (before review only)."""

    text: str = Field(min_length=1, max_length=EDIT_MAX)

    _clean = field_validator("text")(_not_blank)


class ReviewerOut(BaseModel):
    name: str
    title: str
    verified: bool = Field(
        description="True when a signed-in agent reviewed (identity verified by ProConnect); "
        "false for a name declared by an API key or a client"
    )
    agent_id: uuid.UUID | None = Field(description="The signed-in agent who reviewed")


class ReviewOut(BaseModel):
    decision: Literal["approved", "rejected"]
    reviewer: ReviewerOut
    comment: str | None
    reviewed_at: datetime
    reviewed_by: uuid.UUID | None = Field(description="Id of the key that sent the review")


class UsageOut(BaseModel):
    provider: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_eur: float
    energy_kwh: float | None = None
    gwp_kgco2eq: float | None = None
    fallbacks: int
    pseudonymised: int = Field(
        default=0,
        description="How many residents' identifiers (names, addresses, phones, NIR…) the "
        "provider saw as placeholders, restored in the text (docs/privacy.md)",
    )


class DraftOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: Literal["draft", "processing", "approved", "rejected", "failed", "erased"]
    title: str | None
    text: str
    sections: Sections | None
    warnings: list[DraftWarning]
    acte_nature: ActeNature | None
    usage: UsageOut | None
    ai_notice: str
    review: ReviewOut | None
    failure_reason: str | None = None
    model_group: str | None = None
    created_at: datetime
    created_by: uuid.UUID | None


def request_fields(payload: BaseModel) -> dict[str, Any]:
    """The request's content, without transport options, as the templates see it."""
    return payload.model_dump(
        mode="json", by_alias=True, exclude={"stream", "model_group", "max_output_tokens"}
    )
