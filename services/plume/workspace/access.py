"""Who may open the administration pages of /app, and how they are answered: a signed-in
agent's session only (never a key), the role the API's routes require (tenant_admin for
/app/administration, operator_admin for /app/operateur), French HTML pages for refusals,
and a service's refusal turned into a summary and messages next to the fields."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from fastapi import Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from plume.audit.trail import AuditTrail, actor_of
from plume.config import Settings
from plume.credentials.auth import Principal
from plume.credentials.service import ROLE_RANK
from plume.db import enter_tenant_context
from plume.errors import Forbidden, NotFound, PlumeError, Unauthenticated, invalid_field
from plume.identity.sessions import CSRF_COOKIE, SESSION_COOKIE, authenticate_session
from plume.models import ApiKeyRole, Organization
from plume.organizations.service import OrganizationService
from plume.quotas.schemas import QuotaIn
from plume.web.validation import invalid_request_from
from plume.workspace import forms
from plume.workspace.pages import render

HOME = "/app"
API_KEY_REFUSED = (
    "L'espace de travail est réservé aux agents connectés avec ProConnect : une clé d'API "
    "ou un client OAuth2 ne l'ouvre pas (ils utilisent l'API, /v1)."
)
ADMIN_ONLY = (
    "Ces pages sont réservées aux administrateurs de l'organisation. Demandez à votre "
    "administrateur de vous donner ce rôle si vous en avez besoin."
)
M = TypeVar("M", bound=BaseModel)

OPERATOR_ONLY = "Ces pages sont réservées à l'opérateur, Seine-Maritime Numérique."


class SignInFirst(Exception):
    """No usable session: the visitor is sent to the sign-in page."""


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def admin(request: Request, session: AsyncSession, role: ApiKeyRole) -> Principal:
    """The signed-in agent, if its role reaches `role`, with the transaction in its
    tenant's context. A key is refused (the workspace is for people); unsafe requests are
    checked for their CSRF token."""
    if "authorization" in request.headers:
        raise Forbidden(API_KEY_REFUSED)
    if SESSION_COOKIE not in request.cookies:
        raise SignInFirst()
    try:
        principal = await authenticate_session(request, session, settings_of(request))
    except Unauthenticated:
        raise SignInFirst() from None
    request.state.principal = principal
    if ROLE_RANK[principal.role] < ROLE_RANK[role]:
        raise Forbidden(OPERATOR_ONLY if role is ApiKeyRole.OPERATOR_ADMIN else ADMIN_ONLY)
    await enter_tenant_context(session, principal.scope)
    return principal


def is_admin(principal: Principal | None) -> bool:
    return principal is not None and ROLE_RANK[principal.role] >= 1


def is_operator(principal: Principal | None) -> bool:
    return principal is not None and principal.role is ApiKeyRole.OPERATOR_ADMIN


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    settings = settings_of(request)
    principal = context.get("principal")
    base = {
        "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
        "forms": forms.FORMS,
        "sign_in_enabled": settings.sign_in_enabled,
        "is_admin": is_admin(principal),
        "is_operator": is_operator(principal),
    }
    return render(
        template, {**base, **context}, issuer=settings.oidc_issuer, status_code=status_code
    )


def refusal_page(request: Request, error: Exception) -> Response:
    """A French page for a refusal; no session: to the sign-in page."""
    if isinstance(error, SignInFirst):
        return RedirectResponse(HOME, status_code=status.HTTP_303_SEE_OTHER)
    assert isinstance(error, PlumeError)
    context = {"title": error.title, "detail": error.detail, "principal": None}
    return page(request, "erreur.html", context, error.status)


def see(url: str) -> Response:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def audit_of(request: Request, session: AsyncSession, principal: Principal) -> AuditTrail:
    return AuditTrail(session, actor_of(request, principal))


async def posted(request: Request) -> dict[str, str]:
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def parsed(schema: type[M], body: dict[str, Any]) -> M:
    """The body as the API's schema reads it; its errors as the API's 422 (in French, by
    field)."""
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        raise invalid_request_from(error.errors()) from None


def as_uuid(value: str | None) -> uuid.UUID | None:
    """An organisation's id from a query or a form; anything else is no organisation's."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("Aucune organisation ne porte cet identifiant.") from None


@dataclass
class Problems:
    """What a form's page says went wrong: a summary (role=alert) and, by field, a message."""

    summary: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    status: int = 200

    @classmethod
    def of(cls, error: PlumeError) -> Problems:
        by_field = {e.field: e.message for e in error.errors or []}
        # The API's detail names the field as JSON does (« [0].limit »): the page lists the
        # fields by their labels instead.
        summary = "Corrigez les champs signalés ci-dessous." if by_field else error.detail
        return cls(summary, by_field, error.status)

    def __bool__(self) -> bool:
        return bool(self.summary)


async def communes_of(session: AsyncSession, principal: Principal) -> list[Organization]:
    """An EPCI admin's communes, by name; nobody else has any to pick."""
    if principal.organization.kind != "epci":
        return []
    service = OrganizationService(session, principal.scope)
    found = [
        await service.get(child) for child in await service.child_ids(principal.organization_id)
    ]
    return sorted(found, key=lambda o: o.name)


def typed_number(text: str) -> str:
    """« 1 200 » or « 12,50 » as the API reads numbers."""
    return "".join(text.replace("€", "").split()).replace("\u202f", "").replace(",", ".")


def quota_field(metric: str, period: str) -> str:
    """The form field of one quota's limit."""
    return f"limite_{metric}_{period}"


def typed_quotas(form: dict[str, str], pairs: list[tuple[str, str]]) -> dict[str, str]:
    """What was typed in each quota's field, by field."""
    return {quota_field(m, p): form.get(quota_field(m, p), "") for m, p in pairs}


def quota_items(pairs: list[tuple[str, str]], typed: dict[str, str]) -> list[QuotaIn]:
    """The quotas typed (an empty field is no quota), in `pairs`' order, as the API's
    schema reads them; a refusal names the field."""
    items = []
    for metric, period in pairs:
        name = quota_field(metric, period)
        if typed[name].strip():
            items.append(typed_quota(QuotaIn, name, typed[name], metric=metric, period=period))
    return items


def typed_quota(schema: type[M], name: str, text: str, **keys: str) -> M:
    """A quota typed in field `name` (« 1 200 », « 12,50 »), read by the API's `schema`; a
    refusal names that field."""
    try:
        limit = Decimal(typed_number(text.strip()))
    except InvalidOperation:
        raise invalid_field(name, "indiquez un nombre, par exemple 1200 ou 12,50") from None
    try:
        return parsed(schema, {**keys, "limit": limit})
    except PlumeError as error:
        message = error.errors[0].message if error.errors else error.detail
        raise invalid_field(name, message) from None
