"""The cookie path of authentication: a signed-in agent's session, found on every request.

A session is an opaque random token in the `plume_session` cookie (HttpOnly), stored as its
HMAC under the server secret. Every request looks it up again, with its agent and the
agent's organisation chain, through `agent_session_lookup` (no cache, as for API keys): a
revoked or expired session, a suspended agent or a suspended organisation (or ancestor) is
refused at once. Unsafe methods must prove they come from Plume's own pages: the
`X-CSRF-Token` header (or an HTML form's `csrf_token` field) must be the `plume_csrf`
cookie, itself derived from the session's token (double submit, bound to the session).

credentials.auth calls `authenticate_session` when a request has no Authorization header;
a request with one ignores the cookies (and needs no CSRF token).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncSession

from plume.config import Settings
from plume.credentials.auth import Principal, levels_of, scope_for
from plume.credentials.secrets import KeyHasher
from plume.db import TenantScope
from plume.drafting.schemas import SOURCE_MAX
from plume.errors import Forbidden, InvalidRequest, OrganizationSuspended, Unauthenticated
from plume.identity.repository import AgentRepository, FoundSession
from plume.models import AgentRole, AgentStatus, ApiKeyRole, OrganizationKind, OrganizationStatus
from plume.organizations.policy import effective_policy
from plume.organizations.service import organization_out

SESSION_COOKIE = "plume_session"
CSRF_COOKIE = "plume_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_BYTES = 32
_MAX_TOKEN_LENGTH = 128

# An agent's role is a key's of the same name: the routes' role checks serve both.
ROLE_OF_AGENT = {AgentRole.AGENT: ApiKeyRole.AGENT, AgentRole.TENANT_ADMIN: ApiKeyRole.TENANT_ADMIN}


def new_session_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_hash(settings: Settings, token: str) -> str:
    """The session token's HMAC under the current server secret (a rotation of the secret
    ends every session: agents sign in again)."""
    return KeyHasher.from_secret(settings.require_secret_key()).hash("session:" + token)


def csrf_token(settings: Settings, session_token: str) -> str:
    """The CSRF token of a session: derived from it, so that a cookie planted by a
    neighbouring site cannot be paired with a header of the attacker's choosing."""
    key = settings.require_secret_key().encode()
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def cookie_is_secure(settings: Settings) -> bool:
    return not settings.is_development


async def _submitted_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        fields = parse_qs((await request.body()).decode("utf-8", "replace"))
        values = fields.get(CSRF_FIELD)
        return values[0] if values else None
    if media_type == "multipart/form-data":
        # A page's form with a file (the synthèse's source): parsed once, here, within the
        # body limit the middleware enforces; the page then reads the same parsed form. The
        # body is kept too: a provider call digests it (calls.dependencies).
        await request.body()
        try:
            form = await request.form(max_files=1, max_fields=100, max_part_size=SOURCE_MAX)
        except HTTPException:  # Starlette's refusal of a malformed body
            raise InvalidRequest("Le formulaire envoyé est illisible : renvoyez-le.") from None
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, settings: Settings, session_token: str) -> None:
    """403 unless an unsafe request carries the session's CSRF token, as header (or form
    field) and cookie alike."""
    if request.method in SAFE_METHODS:
        return
    expected = csrf_token(settings, session_token)
    submitted = await _submitted_csrf(request) or ""
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not (
        hmac.compare_digest(submitted.encode(), expected.encode())
        and hmac.compare_digest(cookie.encode(), expected.encode())
    ):
        raise Forbidden(
            "Jeton anti-falsification (CSRF) absent ou invalide : envoyez l'en-tête "
            f"{CSRF_HEADER} avec la valeur du cookie {CSRF_COOKIE}."
        )


async def find_session(
    session: AsyncSession, settings: Settings, token: str | None
) -> FoundSession | None:
    """The session of a cookie's token, whatever its state (the caller decides)."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    repository = AgentRepository(session, TenantScope.everything())
    return await repository.lookup_session(token_hash(settings, token), settings.session_idle_s)


def refusal(found: FoundSession, settings: Settings, now: datetime) -> Exception | None:
    """Why this session may not be used now, or None."""
    record, agent = found.session, found.agent
    if record.revoked_at is not None:
        return Unauthenticated("Votre session a été fermée : reconnectez-vous.")
    idle_since = record.last_seen_at + timedelta(seconds=settings.session_idle_s)
    if record.expires_at <= now or idle_since <= now:
        return Unauthenticated("Votre session a expiré : reconnectez-vous.")
    if agent.status is not AgentStatus.ACTIVE:
        return Forbidden(
            "Votre compte est suspendu : adressez-vous à l'administrateur de votre organisation."
        )
    if any(level.status is OrganizationStatus.SUSPENDED for level in found.chain):
        return OrganizationSuspended()
    return None


def agent_role(role: AgentRole, organization_kind: OrganizationKind) -> ApiKeyRole:
    """The key role an agent acts with: its own, except that an administrator of the
    operator's organisation (Seine-Maritime Numérique) is its operator_admin."""
    if role is AgentRole.TENANT_ADMIN and organization_kind is OrganizationKind.OPERATOR:
        return ApiKeyRole.OPERATOR_ADMIN
    return ROLE_OF_AGENT[role]


def principal_of(found: FoundSession) -> Principal:
    chain, agent = found.chain, found.agent
    role = agent_role(agent.role, chain[-1].kind)
    policy = effective_policy([level.policy for level in chain])
    return Principal(
        key_id=None,
        role=role,
        organization=organization_out(chain[-1], policy),
        policy=policy,
        scope=scope_for(role, chain, found.children),
        epci_name=next((o.name for o in chain if o.kind is OrganizationKind.EPCI), None),
        chain=levels_of(chain),
        agent_id=agent.id,
        session_id=found.session.id,
    )


async def authenticate_session(
    request: Request, session: AsyncSession, settings: Settings
) -> Principal:
    """The signed-in agent of the request's session cookie; 401 without a usable session,
    403 for a suspended agent or organisation, or an unsafe request without its CSRF token."""
    token = request.cookies.get(SESSION_COOKIE)
    found = await find_session(session, settings, token)
    if found is None or token is None:
        raise Unauthenticated()
    problem = refusal(found, settings, datetime.now(UTC))
    if problem is not None:
        raise problem
    await check_csrf(request, settings, token)
    return principal_of(found)
