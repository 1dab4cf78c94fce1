"""Organisation policy: validated per level, inherited and only ever narrowed down the tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

DocumentKind = Literal["arrete", "deliberation", "courrier", "bulletin_article", "synthese", "chat"]
Hosting = Literal["fr", "eu", "non_eu"]
PublicationMode = Literal["electronique", "affichage", "papier"]
# What a provider may read of a resident's identity (docs/privacy.md), strictest first.
PersonalData = Literal["refuse", "pseudonymise", "allow"]
PERSONAL_DATA_ORDER: tuple[str, ...] = ("refuse", "pseudonymise", "allow")
DEFAULT_PERSONAL_DATA: PersonalData = "pseudonymise"

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
    personal_data: PersonalData | None = None
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
    personal_data: PersonalData = DEFAULT_PERSONAL_DATA


def personal_data_problem(policy: dict[str, Any], *, operator_level: bool) -> str | None:
    """Why a level's `personal_data` is not allowed, or None: below the operator a level may
    only narrow, and `allow` (residents' identities sent in clear) is the operator's alone."""
    if policy.get("personal_data") == "allow" and not operator_level:
        return (
            "Seul l'opérateur, dans sa propre politique, peut autoriser l'envoi en clair des "
            "données personnelles aux fournisseurs d'IA ; un EPCI ou une commune ne peut que "
            "restreindre (« pseudonymise » ou « refuse »)."
        )
    return None


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

    Lists are intersected, so a lower level can narrow but never widen; so is `personal_data`
    (the strictest level's); the kinds whose review needs a verified identity add up (a level
    may require more, never less); the retention is the shortest in the chain; the tribunal
    is the nearest level's choice; the acts' settings (population, publication mode, mayor,
    secretary) are the organisation's own.
    """
    operator_level = {**DEFAULT_POLICY, **(chain[0] if chain else {})}
    kinds = set(operator_level["allowed_kinds"])
    hosting = set(operator_level["allowed_hosting"])
    tribunal = operator_level["tribunal_administratif"]
    personal = PERSONAL_DATA_ORDER.index(
        operator_level.get("personal_data") or DEFAULT_PERSONAL_DATA
    )
    retention = operator_level["retention_days"]
    verified = {k for level in chain for k in level.get("verified_review_required") or []}
    for level in chain[1:]:
        if level.get("retention_days") is not None:
            retention = min(retention, level["retention_days"])
        if level.get("personal_data") is not None:
            # The strictest level wins: a level below may narrow, never widen.
            personal = min(personal, PERSONAL_DATA_ORDER.index(level["personal_data"]))
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
        personal_data=PERSONAL_DATA_ORDER[personal],
        retention_days=retention,
        verified_review_required=[k for k in ALL_KINDS if k in verified],
        **{key: own[key] for key in ACT_SETTINGS if own.get(key) is not None},
    )
