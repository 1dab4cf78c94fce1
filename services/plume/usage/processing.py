"""The record of processing (RGPD, art. 30) of one organisation: why Plume processes its
agents' and residents' data, how long drafts are kept, how personal data is handled before a
provider sees it, and which providers actually received its requests (from the usage
records), with where each is hosted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import Principal
from plume.usage.repository import UsageRepository

OFFLINE_PROVIDER = "offline"

# Each purpose, as the commune would write it in its own register, and the kinds it covers.
_PURPOSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Aide à la rédaction des actes administratifs (arrêtés, délibérations), relus et "
        "signés par l'autorité compétente",
        ("arrete", "deliberation"),
    ),
    ("Aide à la rédaction des courriers de la collectivité", ("courrier",)),
    ("Aide à la rédaction des articles du bulletin municipal", ("bulletin_article",)),
    ("Synthèse de documents longs", ("synthese",)),
    ("Assistant conversationnel des agents", ("chat",)),
)


class Processor(BaseModel):
    provider: str = Field(description="As in usage records and metrics (`offline`: in Plume)")
    hosting: str = Field(
        description="`fr`, `eu`, `non_eu` as the routing file classes the provider; `local` "
        "for the offline provider (no third party); `unknown` if no longer configured"
    )
    first_used: datetime
    last_used: datetime
    requests: int


class ProcessingRecord(BaseModel):
    organization: str
    purposes: list[str]
    retention_days: int = Field(description="Days a draft's texts are kept, approved or not")
    personal_data: Literal["pseudonymise", "refuse", "allow"] = Field(
        description="What happens to residents' personal data before a provider sees it"
    )
    processors: list[Processor]


async def processing_record(
    session: AsyncSession, principal: Principal, hosting: Mapping[str, str]
) -> ProcessingRecord:
    """`hosting` maps a provider's name to its hosting class (the routing file's)."""
    policy = principal.policy
    rows = await UsageRepository(session).providers_used(principal.organization_id)
    return ProcessingRecord(
        organization=principal.organization.name,
        purposes=[
            purpose
            for purpose, kinds in _PURPOSES
            if any(kind in policy.allowed_kinds for kind in kinds)
        ],
        retention_days=policy.retention_days,
        personal_data=policy.personal_data,
        processors=[
            Processor(
                provider=row.provider,
                hosting="local"
                if row.provider == OFFLINE_PROVIDER
                else hosting.get(row.provider, "unknown"),
                first_used=row.first_used,
                last_used=row.last_used,
                requests=row.requests,
            )
            for row in rows
        ],
    )
