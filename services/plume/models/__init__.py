"""Every ORM table, one module per table; importing this package registers them all."""

from plume.models.agent import Agent, AgentRole, AgentStatus
from plume.models.agent_session import AgentSession
from plume.models.api_key import ApiKey, ApiKeyRole
from plume.models.audit_entry import AuditClientAddress, AuditEntry, AuditHead
from plume.models.default_quota import DEFAULT_QUOTA_KINDS, DefaultQuota
from plume.models.draft import Draft, DraftStatus
from plume.models.idempotency_key import IdempotencyKey
from plume.models.oauth_client import OAuthClient
from plume.models.organization import Organization, OrganizationKind, OrganizationStatus
from plume.models.quota import Quota, QuotaCounter, QuotaLedger, QuotaReservation
from plume.models.usage_record import UsageRecord

__all__ = [
    "DEFAULT_QUOTA_KINDS",
    "Agent",
    "AgentRole",
    "AgentSession",
    "AgentStatus",
    "ApiKey",
    "ApiKeyRole",
    "AuditClientAddress",
    "AuditEntry",
    "AuditHead",
    "DefaultQuota",
    "Draft",
    "DraftStatus",
    "IdempotencyKey",
    "OAuthClient",
    "Organization",
    "OrganizationKind",
    "OrganizationStatus",
    "Quota",
    "QuotaCounter",
    "QuotaLedger",
    "QuotaReservation",
    "UsageRecord",
]
