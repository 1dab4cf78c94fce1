"""The bearer path for OAuth2 access tokens: a token verified (plume.credentials.tokens) and
its client looked up in PostgreSQL make the same Principal as an API key of the client's
role and organisation, with the same tenant scope, so that every route's roles and scope
apply to it unchanged. Called by plume.credentials.auth.authenticate_token."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from plume.config import Settings
from plume.credentials.auth import Principal, _levels, _scope_for
from plume.db import TenantScope
from plume.errors import OrganizationSuspended, Unauthenticated
from plume.models import OrganizationKind, OrganizationStatus
from plume.oauth.repository import OAuthClientRepository
from plume.oauth.tokens import InvalidToken, verify
from plume.organizations.policy import effective_policy
from plume.organizations.service import organization_out


async def authenticate_access_token(
    session: AsyncSession, settings: Settings, token: str
) -> Principal:
    """The client of a valid access token, as it is now: 401 if the token is invalid or
    the client revoked, 403 if its organisation or an ancestor is suspended."""
    try:
        claims = verify(settings, token)
    except InvalidToken as error:
        raise Unauthenticated(str(error)) from None
    # Looked up on every request (no cache): a revoked client is refused at once.
    found = await OAuthClientRepository(session, TenantScope.everything()).lookup(claims.client_id)
    if found is None:
        raise Unauthenticated("Le client OAuth2 de ce jeton d'accès n'existe plus.")
    client, chain, children = found.client, found.chain, found.children
    if client.revoked_at is not None:
        raise Unauthenticated("Le client OAuth2 de ce jeton d'accès a été révoqué.")
    if client.organization_id != claims.organization_id or client.role.value != claims.role:
        raise Unauthenticated("Ce jeton d'accès ne correspond pas à son client OAuth2.")
    if any(level.status is OrganizationStatus.SUSPENDED for level in chain):
        raise OrganizationSuspended(
            "L'organisation de ce client OAuth2 est suspendue. Contactez Seine-Maritime "
            "Numérique pour la réactiver."
        )
    organization = chain[-1]
    policy = effective_policy([level.policy for level in chain])
    return Principal(
        key_id=None,
        client_id=client.id,
        role=client.role,
        organization=organization_out(organization, policy),
        policy=policy,
        scope=_scope_for(client.role, chain, children),
        epci_name=next((o.name for o in chain if o.kind is OrganizationKind.EPCI), None),
        chain=_levels(chain),
    )
