"""GET /v1/me: who is calling, whatever the credential (an API key, an OAuth2 client; a
signed-in agent's variant belongs with the agents' sign-in)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from plume.credentials.auth import AnyKey, Principal
from plume.credentials.clients import OAuthClientRepository
from plume.credentials.repository import ApiKeyRepository
from plume.credentials.schemas import Me, MeOrganization
from plume.errors import Unauthenticated
from plume.web.transaction import DBSession

router = APIRouter(prefix="/v1", tags=["tenant"])


async def _credential(session: DBSession, principal: Principal) -> tuple[uuid.UUID, str]:
    """The id and name of the key or client calling, read within the caller's scope."""
    if principal.client_id is not None:
        client = await OAuthClientRepository(session, principal.scope).get(principal.client_id)
        if client is not None:
            return client.id, client.name
    elif principal.key_id is not None:
        key = await ApiKeyRepository(session, principal.scope).get(principal.key_id)
        if key is not None:
            return key.id, key.name
    raise Unauthenticated()


@router.get("/me", summary="Who is calling: the key or OAuth2 client, its role and organisation")
async def me(session: DBSession, principal: AnyKey) -> Me:
    credential_id, name = await _credential(session, principal)
    organization = principal.organization
    return Me(
        id=credential_id,
        name=name,
        email=None,
        title=None,
        role=principal.role.value,
        organization=MeOrganization(
            id=organization.id, name=organization.name, kind=organization.kind
        ),
    )
