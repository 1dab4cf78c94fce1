"""The shape of a drafted document, shared by drafting, checking, classifying and exporting."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

DocumentKind = Literal["arrete", "deliberation", "courrier", "bulletin_article", "synthese"]
ACT_KINDS: frozenset[str] = frozenset({"arrete", "deliberation"})

AI_NOTICE = (
    "Document rédigé avec l'assistance d'un système d'intelligence artificielle (Plume). "
    "Il doit être relu, complété si besoin et validé par un agent habilité avant toute "
    "signature ou diffusion."
)


class Article(BaseModel):
    number: str = Field(description="'1er', '2', '3'…")
    text: str


class Sections(BaseModel):
    """The parts of an act (empty for other kinds)."""

    title: str | None = None
    visas: list[str] = Field(default_factory=list)
    considerants: list[str] = Field(default_factory=list)
    articles: list[Article] = Field(default_factory=list)
    mentions: list[str] = Field(default_factory=list)
    signature: str | None = None


class DraftWarning(BaseModel):
    code: str = Field(description="Stable, e.g. missing_appeal_mention")
    message: str = Field(description="French, for the person reviewing the draft: what to do")
    source: str | None = Field(
        default=None,
        description="The legal reference the warning rests on, e.g. « CGCT, art. L. 2121-15 »",
    )


class ActeNature(BaseModel):
    code: str = Field(description="ACTES matière code, e.g. '6.1'")
    label: str


class Officer(BaseModel):
    name: str
    title: str


class TenantIdentity(BaseModel):
    """Who the document is written for: taken from the tenant, never from the request."""

    commune_name: str
    insee_code: str | None = None
    epci_name: str | None = None
    department: str = "Seine-Maritime"
    tribunal_administratif: str = "Rouen"
    # The organisation's settings for its acts (CGCT L. 2131-1: publicity; signatures).
    population: int | None = None
    publication_mode: Literal["electronique", "affichage", "papier"] = "electronique"
    mayor: Officer | None = None
    secretary: Officer | None = None
