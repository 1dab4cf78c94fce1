"""HTTP routes for agents: sign-in with ProConnect (/auth/…), the organisation's agents
(/v1/organization/agents), and who is calling (/v1/me, the agent's sessions)."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from plume.audit.trail import Actor, Audit, client_address, record
from plume.config import Settings
from plume.credentials.auth import AnyKey, Principal, TenantAdmin
from plume.credentials.service import find_key
from plume.db import TenantScope, enter_tenant_context
from plume.errors import DEFAULT_PUBLIC_URL, Forbidden, NotFound, Unauthenticated
from plume.identity import pages
from plume.identity.administration import invite_recorded, update_recorded
from plume.identity.oidc import OidcProvider, ProviderError
from plume.identity.schemas import (
    AgentInvite,
    AgentOut,
    AgentPatch,
    MeOrganization,
    MeOut,
    SessionOut,
)
from plume.identity.service import AgentService, SignInRefused, agent_out, sign_in
from plume.identity.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    cookie_is_secure,
    csrf_token,
    find_session,
    refusal,
)
from plume.identity.state import LOGIN_COOKIE, LOGIN_TTL_S, new_pending, safe_next, seal, unseal
from plume.oauth.service import find_client
from plume.organizations.service import OrganizationService
from plume.web.openapi import raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

logger = structlog.get_logger("plume.identity")

auth_router = APIRouter(prefix="/auth", tags=["sign-in"], include_in_schema=False)
agents_router = APIRouter(prefix="/v1/organization/agents", tags=["tenant"])
me_router = APIRouter(prefix="/v1/me", tags=["identity"])

LOGGED_OUT_PATH = "/auth/logged-out"

OrganizationParam = Annotated[
    uuid.UUID | None,
    Query(description="An EPCI admin may name one of its communes; default: its own"),
]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _public_url(settings: Settings) -> str:
    return (settings.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def _html(content: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers={"Cache-Control": "no-store"})


def _provider(request: Request) -> OidcProvider | None:
    provider: OidcProvider | None = getattr(request.app.state, "oidc", None)
    return provider


def _clear(response: Response, settings: Settings, *names: str) -> None:
    for name in names:
        response.delete_cookie(
            name,
            path="/auth" if name == LOGIN_COOKIE else "/",
            secure=cookie_is_secure(settings),
            httponly=name != CSRF_COOKIE,
            samesite="lax",
        )


# -- sign-in ---------------------------------------------------------------------------------


@auth_router.get("/login")
async def login(request: Request, next: str | None = None) -> Response:
    """To the provider: an authorization code request (PKCE S256, state, nonce), whose
    secrets wait for the callback in a signed cookie."""
    provider = _provider(request)
    if provider is None:
        return _html(pages.sign_in_off(), status.HTTP_404_NOT_FOUND)
    settings = _settings(request)
    try:
        authorization = await provider.authorization()
    except ProviderError as exc:
        logger.warning("oidc.provider_unavailable", reason=str(exc))
        return _html(pages.unavailable(), status.HTTP_503_SERVICE_UNAVAILABLE)
    pending = new_pending(
        authorization.state, authorization.nonce, authorization.code_verifier, safe_next(next)
    )
    response = RedirectResponse(authorization.url, status_code=status.HTTP_302_FOUND)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        LOGIN_COOKIE,
        seal(pending, settings.require_secret_key()),
        max_age=LOGIN_TTL_S,
        path="/auth",
        secure=cookie_is_secure(settings),
        httponly=True,
        samesite="lax",
    )
    return response


@auth_router.get("/callback")
async def callback(
    request: Request,
    session: DBSession,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Back from the provider: check the state, exchange the code, admit the agent, open
    the session (cookies), then on to where the agent was going."""
    provider = _provider(request)
    if provider is None:
        return _html(pages.sign_in_off(), status.HTTP_404_NOT_FOUND)
    settings = _settings(request)
    pending = unseal(request.cookies.get(LOGIN_COOKIE), settings.require_secret_key())
    if (
        error is not None
        or pending is None
        or not code
        or not state
        or not hmac.compare_digest(state.encode(), pending.state.encode())
    ):
        logger.info("oidc.callback_refused", provider_error=error, pending=pending is not None)
        return _html(pages.failed(), status.HTTP_400_BAD_REQUEST)
    try:
        identity = await provider.identify(code, pending.code_verifier, pending.nonce)
    except ProviderError as exc:
        logger.warning("oidc.identity_refused", reason=str(exc))
        return _html(pages.failed(), status.HTTP_400_BAD_REQUEST)
    try:
        signed = await sign_in(
            session, settings, identity, user_agent=request.headers.get("user-agent")
        )
    except SignInRefused as refused:
        logger.info("oidc.sign_in_refused", reason=refused.reason)
        page = _html(pages.refused(refused.reason, refused.organization), 403)
        _clear(page, settings, LOGIN_COOKIE)
        return page
    await record(
        session,
        organization_id=signed.organization.id,
        action="agent.sign_in",
        actor=Actor(
            key_id=None,
            role=signed.agent.role.value,
            request_id=getattr(request.state, "request_id", None),
            client_address=client_address(request),
            agent_id=signed.agent.id,
        ),
        target=("agent_session", str(signed.session.id)),
        details={"acr": identity.acr},
    )
    response = RedirectResponse(pending.next, status_code=status.HTTP_302_FOUND)
    response.headers["Cache-Control"] = "no-store"
    secure = cookie_is_secure(settings)
    response.set_cookie(
        SESSION_COOKIE, signed.token, path="/", secure=secure, httponly=True, samesite="lax"
    )
    # Readable by the page's scripts, which send it back as X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token(settings, signed.token),
        path="/",
        secure=secure,
        httponly=False,
        samesite="lax",
    )
    _clear(response, settings, LOGIN_COOKIE)
    return response


@auth_router.post("/logout")
async def logout(request: Request, session: DBSession) -> Response:
    """End the session here (server-side, at once), then at the provider when it has an
    end-session endpoint (with the ID token as hint)."""
    settings = _settings(request)
    token = request.cookies.get(SESSION_COOKIE)
    found = await find_session(session, settings, token)
    destination = _public_url(settings) + LOGGED_OUT_PATH
    if (
        found is not None
        and token is not None
        and refusal(found, settings, datetime.now(UTC)) is None
    ):
        await check_csrf(request, settings, token)
        agent, chain = found.agent, found.chain
        scope = TenantScope(
            frozenset([agent.organization_id]), ancestor_ids=frozenset(o.id for o in chain[:-1])
        )
        await enter_tenant_context(session, scope)
        await AgentService(session, scope).revoke_session(agent.id, found.session.id)
        await record(
            session,
            organization_id=agent.organization_id,
            action="agent.sign_out",
            actor=Actor(
                key_id=None,
                role=agent.role.value,
                request_id=getattr(request.state, "request_id", None),
                client_address=client_address(request),
                agent_id=agent.id,
            ),
            target=("agent_session", str(found.session.id)),
        )
        provider = _provider(request)
        if provider is not None:
            url = await provider.logout_url(found.session.id_token, destination)
            destination = url or destination
    response = RedirectResponse(destination, status_code=status.HTTP_303_SEE_OTHER)
    response.headers["Cache-Control"] = "no-store"
    _clear(response, settings, SESSION_COOKIE, CSRF_COOKIE)
    return response


@auth_router.get("/logged-out")
async def logged_out() -> Response:
    return _html(
        pages.page("Vous êtes déconnecté(e)", "Votre session Plume est fermée."),
        status.HTTP_200_OK,
    )


# -- the organisation's agents ---------------------------------------------------------------


@agents_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Invite an agent (by e-mail) to your organisation (or one of your communes)",
    responses=raises(NotFound),
)
async def invite_agent(
    payload: AgentInvite,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
    organization_id: OrganizationParam = None,
) -> AgentOut:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    service = AgentService(session, principal.scope)
    return await invite_recorded(service, organization, payload, caller=principal, audit=audit)


@agents_router.get(
    "",
    summary="List the agents of your organisation (or of one of your communes)",
    responses=raises(NotFound),
)
async def list_agents(
    session: DBSession,
    principal: TenantAdmin,
    page: PageParams,
    organization_id: OrganizationParam = None,
) -> Page[AgentOut]:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    agents = await AgentService(session, principal.scope).list_page(organization.id, page)
    rows, cursor = next_cursor(list(agents), page, lambda a: (a.created_at, a.id))
    return Page(items=[agent_out(a) for a in rows], next_cursor=cursor)


@agents_router.patch(
    "/{agent_id}",
    summary="Change an agent's role, title or status (suspending ends its sessions at once)",
    responses=raises(NotFound),
)
async def update_agent(
    agent_id: uuid.UUID,
    payload: AgentPatch,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
) -> AgentOut:
    service = AgentService(session, principal.scope)
    return await update_recorded(service, await service.get(agent_id), payload, audit=audit)


# -- who is calling --------------------------------------------------------------------------


def _organization(principal: Principal) -> MeOrganization:
    organization = principal.organization
    return MeOrganization(id=organization.id, name=organization.name, kind=organization.kind)


async def _agent_me(session: DBSession, principal: Principal) -> MeOut:
    """A signed-in agent, as its own record says (kept apart: the OAuth2 work adds the
    other callers' branches)."""
    assert principal.agent_id is not None
    service = AgentService(session, principal.scope)
    agent = await service.get(principal.agent_id)
    acr = None
    if principal.session_id is not None:
        current = [s for s in await service.sessions(agent.id) if s.id == principal.session_id]
        acr = current[0].acr if current else None
    return MeOut(
        kind="agent",
        id=agent.id,
        name=agent.display_name,
        email=agent.email,
        title=agent.title,
        role=agent.role.value,
        organization=_organization(principal),
        acr=acr,
    )


async def _credential_me(session: DBSession, principal: Principal) -> MeOut:
    """An OAuth2 client or an API key: its id and name, read within the caller's scope."""
    if principal.client_id is not None:
        client = await find_client(session, principal.scope, principal.client_id)
        if client is not None:
            return MeOut(
                kind="oauth_client",
                id=client.id,
                name=client.name,
                role=principal.role.value,
                organization=_organization(principal),
            )
    elif principal.key_id is not None:
        key = await find_key(session, principal.scope, principal.key_id)
        if key is not None:
            return MeOut(
                kind="api_key",
                id=key.id,
                name=key.name,
                role=principal.role.value,
                organization=_organization(principal),
            )
    raise Unauthenticated()


@me_router.get("", summary="Who is calling: a signed-in agent, an OAuth2 client or an API key")
async def me(session: DBSession, principal: AnyKey) -> MeOut:
    if principal.agent_id is not None:
        return await _agent_me(session, principal)
    return await _credential_me(session, principal)


def _agent_of(principal: Principal) -> uuid.UUID:
    if principal.agent_id is None:
        raise Forbidden("Seul un agent connecté par ProConnect a des sessions.")
    return principal.agent_id


@me_router.get(
    "/sessions", summary="Your open sessions (signed-in agents)", responses=raises(Forbidden)
)
async def list_sessions(session: DBSession, principal: AnyKey) -> list[SessionOut]:
    agent_id = _agent_of(principal)
    sessions = await AgentService(session, principal.scope).sessions(agent_id)
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_seen_at=s.last_seen_at,
            expires_at=s.expires_at,
            acr=s.acr,
            user_agent=s.user_agent,
            current=s.id == principal.session_id,
        )
        for s in sessions
    ]


@me_router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End one of your sessions, at once",
    responses=raises(Forbidden, NotFound),
)
async def revoke_session(
    session_id: uuid.UUID, session: DBSession, principal: AnyKey, audit: Audit
) -> None:
    agent_id = _agent_of(principal)
    await AgentService(session, principal.scope).revoke_session(agent_id, session_id)
    await audit.record(
        principal.organization_id, "agent.session_revoke", target=("agent_session", str(session_id))
    )
