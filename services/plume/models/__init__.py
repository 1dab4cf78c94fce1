"""Every ORM table, one module per table; importing this package registers them all."""

from plume.models.api_key import ApiKey, ApiKeyRole
from plume.models.draft import Draft, DraftStatus
from plume.models.organization import Organization, OrganizationKind, OrganizationStatus

__all__ = [
    "ApiKey",
    "ApiKeyRole",
    "Draft",
    "DraftStatus",
    "Organization",
    "OrganizationKind",
    "OrganizationStatus",
]
