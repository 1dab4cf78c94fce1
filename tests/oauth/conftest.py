"""The OAuth2 client tests' `tenant`: a commune with its tenant admin and agent keys, and
the operator's key (as in tests/credentials)."""

from __future__ import annotations

import pytest

from tests.credentials.helpers import Tenant
from tests.support.factories import Factory


@pytest.fixture
async def tenant(factory: Factory) -> Tenant:
    commune = await factory.commune("Yvetot")
    return Tenant(
        commune=commune,
        admin=await factory.key(commune, "tenant_admin"),
        agent=await factory.key(commune, "agent"),
        operator=await factory.operator_key(),
    )
