"""Organisation policy: validated per level, inherited and only ever narrowed down the tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

DocumentKind = Literal["arrete", "deliberation", "courrier", "bulletin_article", "synthese", "chat"]
Hosting = Literal["fr", "eu", "non_eu"]
PublicationMode = Literal["electronique", "affichage", "papier"]

# CGCT L. 2131-1 IV: below this population a commune may choose, by délibération, to publish
# its acts by affichage or on paper instead of electronically.
SMALL_COMMUNE_POPULATION = 3_500
DEFAULT_PUBLICATION_MODE: PublicationMode = "electronique"
# The settings the acts use: an organisation's own, never inherited from the level above.
ACT_SETTINGS: tuple[str, ...] = ("population", "publication_mode", "mayor", "secretary")

ALL_KINDS: tuple[str, ...] = (
    "arrete",
    "deliberation",
    "courrier",
    "bulletin_article",
    "synthese",
    "chat",
)
ALL_HOSTING: tuple[str, ...] = ("fr", "eu", "non_eu")

# How long a draft's texts are kept (days), approved or not: the signed act is the commune's to
# archive, not Plume's.
DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 3_650

# The operator's defaults, in force where the operator's own policy sets nothing.
DEFAULT_POLICY: dict[str, Any] = {
    "allowed_kinds": list(ALL_KINDS),
    "allowed_hosting": ["fr", "eu"],
    "tribunal_administratif": "Rouen",
    "retention_days": DEFAULT_RETENTION_DAYS,
}


class Officer(BaseModel):
    """Who signs: the mayor, or the secrétaire de séance / secrétaire général de mairie."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=200)

    @field_validator("name", "title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("Ne peut pas être vide.")
        return " ".join(value.split())


class PolicyPatch(BaseModel):
    """The keys an operator sets at one level; absent or null means inherit."""

    model_config = ConfigDict(extra="forbid")

    allowed_kinds: list[DocumentKind] | None = Field(default=None, max_length=len(ALL_KINDS))
    allowed_hosting: list[Hosting] | None = Field(default=None, max_length=len(ALL_HOSTING))
    tribunal_administratif: str | None = Field(default=None, min_length=1, max_length=80)
    # Strict: `true` is not a population.
    population: StrictInt | None = Field(default=None, ge=0, le=10_000_000)
    publication_mode: PublicationMode | None = None
    mayor: Officer | None = None
    secretary: Officer | None = None
    # A lower level may only shorten it (the shortest in the chain is in force).
    retention_days: StrictInt | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    # The kinds of documents whose review needs a signed-in agent (identity verified by
    # ProConnect); a key's or a client's declared reviewer is refused for them.
    verified_review_required: list[DocumentKind] | None = Field(
        default=None, max_length=len(ALL_KINDS)
    )

    @field_validator("allowed_kinds", "allowed_hosting", "verified_review_required")
    @classmethod
    def _no_duplicates(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("Une valeur est répétée.")
        return value

    @field_validator("tribunal_administratif")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("Ne peut pas être vide.")
        return value.strip() if value is not None else None


class EffectivePolicy(BaseModel):
    allowed_kinds: list[DocumentKind]
    allowed_hosting: list[Hosting]
    tribunal_administratif: str
    retention_days: int = DEFAULT_RETENTION_DAYS
    population: int | None = None
    publication_mode: PublicationMode = DEFAULT_PUBLICATION_MODE
    mayor: Officer | None = None
    secretary: Officer | None = None
    verified_review_required: list[DocumentKind] = Field(default_factory=list)


def publication_mode_problem(policy: dict[str, Any]) -> str | None:
    """Why a level's publication mode is not allowed (CGCT L. 2131-1 IV), or None."""
    mode = policy.get("publication_mode") or DEFAULT_PUBLICATION_MODE
    if mode == DEFAULT_PUBLICATION_MODE:
        return None
    population = policy.get("population")
    if population is None:
        return (
            "La publicité par affichage ou sur papier n'est ouverte qu'aux communes de moins de "
            "3 500 habitants : indiquez d'abord la population (« population »)."
        )
    if population >= SMALL_COMMUNE_POPULATION:
        return (
            f"Une commune de {population} habitants publie ses actes sous forme électronique : "
            "l'affichage ou le papier ne sont ouverts qu'en dessous de 3 500 habitants "
            "(CGCT, art. L. 2131-1)."
        )
    return None


def merge_patch(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a PATCH: a key set to null is removed (inherit again), others replace."""
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def effective_policy(chain: Sequence[dict[str, Any]]) -> EffectivePolicy:
    """Compute the policy in force at the end of `chain` (operator first, the tenant last).

    Lists are intersected, so a lower level can narrow but never widen; the kinds whose
    review needs a verified identity add up (a level may require more, never less); the
    retention is the shortest in the chain; the tribunal is the nearest level's choice; the
    acts' settings (population, publication mode, mayor, secretary) are the organisation's
    own.
    """
    operator_level = {**DEFAULT_POLICY, **(chain[0] if chain else {})}
    kinds = set(operator_level["allowed_kinds"])
    hosting = set(operator_level["allowed_hosting"])
    tribunal = operator_level["tribunal_administratif"]
    retention = operator_level["retention_days"]
    verified = {k for level in chain for k in level.get("verified_review_required") or []}
    for level in chain[1:]:
        if level.get("retention_days") is not None:
            retention = min(retention, level["retention_days"])
        if level.get("allowed_kinds") is not None:
            kinds &= set(level["allowed_kinds"])
        if level.get("allowed_hosting") is not None:
            hosting &= set(level["allowed_hosting"])
        if level.get("tribunal_administratif"):
            tribunal = level["tribunal_administratif"]
    own = chain[-1] if chain else {}
    return EffectivePolicy(
        allowed_kinds=[k for k in ALL_KINDS if k in kinds],
        allowed_hosting=[h for h in ALL_HOSTING if h in hosting],
        tribunal_administratif=tribunal,
        retention_days=retention,
        verified_review_required=[k for k in ALL_KINDS if k in verified],
        **{key: own[key] for key in ACT_SETTINGS if own.get(key) is not None},
    )
