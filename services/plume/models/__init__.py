"""Every ORM table, one module per table; importing this package registers them all."""

from plume.models.api_key import ApiKey, ApiKeyRole
from plume.models.organization import Organization, OrganizationKind, OrganizationStatus

__all__ = ["ApiKey", "ApiKeyRole", "Organization", "OrganizationKind", "OrganizationStatus"]
