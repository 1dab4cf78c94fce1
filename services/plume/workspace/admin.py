"""/app/administration: a tenant admin's pages for its organisation (an EPCI's admin may
pick one of its communes): agents, OAuth2 clients and API keys. The same services and the
same audit records as /v1/organization/agents, /oauth-clients and /api-keys; a secret is
shown once, on the page that answers its creation (never stored, never shown again).
Quotas, usage and the audit trail are in admin_reports."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from plume.credentials.auth import Principal
from plume.credentials.minting import mint_recorded
from plume.credentials.minting import revoke_recorded as revoke_key_recorded
from plume.credentials.schemas import ApiKeyCreate
from plume.credentials.secrets import KeyHasher
from plume.credentials.service import ApiKeyService, find_key, key_out, manageable_roles
from plume.dates import PARIS
from plume.errors import NotFound, PlumeError
from plume.identity.administration import invite_recorded, update_recorded
from plume.identity.schemas import AgentInvite, AgentPatch
from plume.identity.service import AgentService, agent_out
from plume.models import ApiKeyRole, Organization
from plume.oauth.minting import create_recorded
from plume.oauth.minting import revoke_recorded as revoke_client_recorded
from plume.oauth.schemas import OAuthClientCreate
from plume.oauth.service import OAuthClientService, client_out, find_client
from plume.organizations.service import OrganizationService
from plume.web.pagination import MAX_LIMIT, PageRequest
from plume.web.transaction import DBSession
from plume.workspace import access
from plume.workspace.access import Problems

router = APIRouter(prefix="/app/administration", include_in_schema=False)

BASE = "/app/administration"
ADMIN = ApiKeyRole.TENANT_ADMIN
EVERYTHING = PageRequest(limit=MAX_LIMIT, after=None)
ROLE_LABELS = {
    "agent": "Agent",
    "tenant_admin": "Administrateur",
    "operator_admin": "Opérateur",
    "system": "Système",
}
STATUS_LABELS = {
    "invited": "Invité(e)",
    "active": "Actif",
    "suspended": "Suspendu(e)",
    "expired": "Expirée",
    "revoked": "Révoqué(e)",
}


async def admin_context(
    request: Request, session: AsyncSession, organisation: str | None, section: str
) -> tuple[Principal, Organization, dict[str, Any]]:
    """The admin, the organisation the page is about, and what every admin page shows."""
    principal = await access.admin(request, session, ADMIN)
    target = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, access.as_uuid(organisation)
    )
    own = target.id == principal.organization_id
    return (
        principal,
        target,
        {
            "principal": principal,
            "organisation": target,
            "communes": await access.communes_of(session, principal),
            "query": "" if own else f"?organisation={target.id}",
            "organisation_field": "" if own else str(target.id),
            "section": section,
            "role_labels": ROLE_LABELS,
            "state_labels": STATUS_LABELS,
        },
    )


def _hasher(request: Request) -> KeyHasher:
    return KeyHasher.from_secret(access.settings_of(request).require_secret_key())


def _keys(request: Request, session: AsyncSession, principal: Principal) -> ApiKeyService:
    max_days = access.settings_of(request).api_key_max_days
    lifetime = timedelta(days=max_days) if max_days is not None else None
    return ApiKeyService(session, principal.scope, _hasher(request), max_lifetime=lifetime)


def _clients(request: Request, session: AsyncSession, principal: Principal) -> OAuthClientService:
    return OAuthClientService(session, principal.scope, _hasher(request))


# -- home ------------------------------------------------------------------------------------


@router.get("")
async def home(request: Request, session: DBSession, organisation: str | None = None) -> Response:
    try:
        _, _, context = await admin_context(request, session, organisation, "accueil")
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.page(request, "admin/accueil.html", context)


# -- agents ----------------------------------------------------------------------------------


async def _agents_page(
    request: Request,
    session: AsyncSession,
    organisation: str | None,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    principal, target, context = await admin_context(request, session, organisation, "agents")
    agents = await AgentService(session, principal.scope).list_page(target.id, EVERYTHING)
    problems = problems or Problems()
    return access.page(
        request,
        "admin/agents.html",
        {
            **context,
            "agents": [agent_out(a) for a in agents],
            "values": values or {},
            "problems": problems,
        },
        problems.status,
    )


@router.get("/agents")
async def agents(request: Request, session: DBSession, organisation: str | None = None) -> Response:
    try:
        return await _agents_page(request, session, organisation)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.post("/agents")
async def invite(request: Request, session: DBSession) -> Response:
    """« Inviter »: POST /v1/organization/agents, recorded as `agent.invite`."""
    try:
        principal = await access.admin(request, session, ADMIN)
        form = await access.posted(request)
        organisation = form.get("organisation") or None
        target = await OrganizationService(session, principal.scope).managed(
            principal.organization_id, access.as_uuid(organisation)
        )
        values = {name: form.get(name, "") for name in ("email", "role", "title")}
        try:
            payload = access.parsed(
                AgentInvite,
                {"email": values["email"], "role": values["role"] or "agent"}
                | ({"title": values["title"]} if values["title"].strip() else {}),
            )
            await invite_recorded(
                AgentService(session, principal.scope),
                target,
                payload,
                caller=principal,
                audit=access.audit_of(request, session, principal),
            )
        except PlumeError as error:
            await session.rollback()
            return await _agents_page(request, session, organisation, values, Problems.of(error))
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/agents{_query(organisation)}")


@router.post("/agents/{agent_id}")
async def update_agent(agent_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Enregistrer » (role, title) or « Suspendre » / « Réactiver »: PATCH
    /v1/organization/agents/{id}; suspending ends the agent's sessions at once."""
    try:
        principal = await access.admin(request, session, ADMIN)
        form = await access.posted(request)
        organisation = form.get("organisation") or None
        body: dict[str, Any] = {}
        for name in ("role", "status"):
            if form.get(name):
                body[name] = form[name]
        if "title" in form and form["title"].strip():
            body["title"] = form["title"]
        service = AgentService(session, principal.scope)
        agent = await service.get(agent_id)
        try:
            payload = access.parsed(AgentPatch, body)
        except PlumeError as error:
            return await _agents_page(request, session, organisation, None, Problems.of(error))
        audit = access.audit_of(request, session, principal)
        await update_recorded(service, agent, payload, audit=audit)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/agents{_query(organisation)}")


def _query(organisation: str | None) -> str:
    """Back to the organisation the form was about (an id, or nothing: never posted text)."""
    try:
        return f"?organisation={uuid.UUID(organisation)}" if organisation else ""
    except ValueError:
        return ""


# -- OAuth2 clients and API keys -------------------------------------------------------------


async def _credentials_page(
    request: Request,
    session: AsyncSession,
    organisation: str | None,
    kind: str,
    values: dict[str, str] | None = None,
    problems: Problems | None = None,
) -> Response:
    section = "clients" if kind == "client" else "cles"
    principal, target, context = await admin_context(request, session, organisation, section)
    if kind == "client":
        clients = await _clients(request, session, principal).list_page(
            target.id, EVERYTHING, caller_role=principal.role
        )
        items: list[Any] = [client_out(c) for c in clients]
    else:
        keys = await _keys(request, session, principal).list_page(
            target.id, EVERYTHING, caller_role=principal.role
        )
        items = [key_out(k) for k in keys]
    problems = problems or Problems()
    return access.page(
        request,
        f"admin/{section}.html",
        {**context, "items": items, "values": values or {}, "problems": problems},
        problems.status,
    )


@router.get("/clients")
async def clients(
    request: Request, session: DBSession, organisation: str | None = None
) -> Response:
    try:
        return await _credentials_page(request, session, organisation, "client")
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


@router.get("/cles")
async def keys(request: Request, session: DBSession, organisation: str | None = None) -> Response:
    try:
        return await _credentials_page(request, session, organisation, "key")
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)


def _end_of_day(value: str) -> str:
    """A date typed in the form: the key works until the end of that day, in Paris."""
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return value
    return datetime.combine(day, time(23, 59, 59), tzinfo=PARIS).isoformat()


@router.post("/clients")
async def create_client(request: Request, session: DBSession) -> Response:
    """« Créer le client »: POST /v1/organization/oauth-clients; its secret on this page only."""
    return await _create(request, session, "client")


@router.post("/cles")
async def create_key(request: Request, session: DBSession) -> Response:
    """« Créer la clé »: POST /v1/organization/api-keys; the key on this page only."""
    return await _create(request, session, "key")


async def _create(request: Request, session: AsyncSession, kind: str) -> Response:
    try:
        principal = await access.admin(request, session, ADMIN)
        form = await access.posted(request)
        organisation = form.get("organisation") or None
        target = await OrganizationService(session, principal.scope).managed(
            principal.organization_id, access.as_uuid(organisation)
        )
        values = {name: form.get(name, "") for name in ("name", "role", "expires_at")}
        try:
            created = await _mint(request, session, principal, target, kind, values)
        except PlumeError as error:
            await session.rollback()
            problems = Problems.of(error)
            return await _credentials_page(request, session, organisation, kind, values, problems)
        _, _, context = await admin_context(
            request, session, organisation, "clients" if kind == "client" else "cles"
        )
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.page(request, "admin/secret.html", {**context, "kind": kind, "created": created})


async def _mint(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    target: Organization,
    kind: str,
    values: dict[str, str],
) -> Any:
    """The client or the key, created as the API creates it, and recorded (never its
    secret: its id, name, role and prefix)."""
    audit = access.audit_of(request, session, principal)
    if kind == "client":
        payload = access.parsed(OAuthClientCreate, {"name": values["name"], "role": values["role"]})
        clients = _clients(request, session, principal)
        return await create_recorded(clients, target, payload, caller=principal, audit=audit)
    body = {"name": values["name"], "role": values["role"]}
    if values["expires_at"].strip():
        body["expires_at"] = _end_of_day(values["expires_at"])
    key_payload = access.parsed(ApiKeyCreate, body)
    keys = _keys(request, session, principal)
    key = await mint_recorded(keys, target, key_payload, caller=principal, audit=audit)
    return key


@router.post("/clients/{oauth_client_id}/revoquer")
async def revoke_client(
    oauth_client_id: uuid.UUID, request: Request, session: DBSession
) -> Response:
    """« Révoquer » shows a confirmation; « Confirmer » revokes: its tokens stop at once."""
    return await _revoke(request, session, "client", oauth_client_id)


@router.post("/cles/{api_key_id}/revoquer")
async def revoke_key(api_key_id: uuid.UUID, request: Request, session: DBSession) -> Response:
    """« Révoquer » shows a confirmation; « Confirmer » revokes the key at once."""
    return await _revoke(request, session, "key", api_key_id)


async def _revoke(
    request: Request, session: AsyncSession, kind: str, item_id: uuid.UUID
) -> Response:
    section = "clients" if kind == "client" else "cles"
    try:
        principal = await access.admin(request, session, ADMIN)
        form = await access.posted(request)
        organisation = form.get("organisation") or None
        if form.get("confirme") != "1":
            _, _, context = await admin_context(request, session, organisation, section)
            name = await _name_of(session, principal, kind, item_id)
            return access.page(
                request,
                "admin/revoquer.html",
                {**context, "kind": kind, "item_id": item_id, "name": name},
            )
        audit = access.audit_of(request, session, principal)
        if kind == "client":
            clients = _clients(request, session, principal)
            await revoke_client_recorded(clients, item_id, caller=principal, audit=audit)
        else:
            keys = _keys(request, session, principal)
            await revoke_key_recorded(keys, item_id, caller=principal, audit=audit)
    except (PlumeError, access.SignInFirst) as error:
        return access.refusal_page(request, error)
    return access.see(f"{BASE}/{section}{_query(organisation)}")


async def _name_of(
    session: AsyncSession, principal: Principal, kind: str, item_id: uuid.UUID
) -> str:
    """The name of the client or key to revoke, if the admin manages it (else 404)."""
    if kind == "client":
        found: Any = await find_client(session, principal.scope, item_id)
    else:
        found = await find_key(session, principal.scope, item_id)
    if found is None or found.role not in manageable_roles(principal.role):
        raise NotFound("Aucune clé ni aucun client ne porte cet identifiant.")
    name: str = found.name
    return name
