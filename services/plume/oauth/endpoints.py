"""HTTP routes for OAuth2: the authorization server, for the client credentials grant
alone (RFC 6749, section 4.4: the token endpoint, the signing keys as a JWKS, the server's
metadata as RFC 8414 says), and the clients' management, as for API keys
(plume.credentials.endpoints): the operator's for every tenant, a tenant admin's for its
own organisation (or, for an EPCI's, one of its communes).

The token endpoint answers RFC 6749's JSON (`{error, error_description}`, through Authlib's
error classes), not problem details: OAuth2 client libraries read that shape. Authlib's
AuthorizationServer is not used: it is synchronous and has no Starlette server integration,
while finding a client is an asynchronous PostgreSQL call here; the grant is small enough to
be read whole below.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse

from plume.audit.trail import Audit, AuditTrail
from plume.config import Settings
from plume.credentials.auth import OperatorAdmin, Principal, TenantAdmin, hashers
from plume.credentials.secrets import KeyHasher
from plume.errors import NotFound, PayloadTooLarge
from plume.models import Organization, OrganizationStatus
from plume.oauth.minting import create_recorded, revoke_recorded
from plume.oauth.schemas import (
    OAuthClientCreate,
    OAuthClientCreated,
    OAuthClientOut,
    OAuthError,
    TokenResponse,
)
from plume.oauth.service import OAuthClientService, authenticate_client, client_out
from plume.oauth.tokens import (
    ALGORITHM,
    JWKS_PATH,
    METADATA_PATH,
    TOKEN_PATH,
    audience,
    issue,
    issuer,
    scope_of,
    signing_keys,
)
from plume.organizations.service import OrganizationService
from plume.web.openapi import Responses, merge, raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

server_router = APIRouter(tags=["oauth"])

GRANT_TYPE = "client_credentials"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
FORM = "application/x-www-form-urlencoded"
_PARAMETERS = frozenset({"grant_type", "scope", "client_id", "client_secret"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The keys and the metadata change only with a deployment: a verifier that meets an unknown
# `kid` fetches the keys again.
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


def _oauth_error(error: OAuth2Error) -> JSONResponse:
    """An RFC 6749 error answer. Its description is ASCII, as RFC 6749 requires (French
    without accents)."""
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    return JSONResponse(dict(error.get_body()), status_code=error.status_code, headers=headers)


class _Refused(Exception):
    def __init__(self, error: OAuth2Error) -> None:
        self.error = error


def _form(request: Request, body: bytes) -> dict[str, str]:
    """The parameters this endpoint knows, each at most once; the others are ignored
    (RFC 6749, section 3.2)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise _Refused(InvalidRequestError(f"Le corps doit etre {FORM}."))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(InvalidRequestError("Le corps n'est pas un formulaire valide.")) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in _PARAMETERS:
            continue
        if name in form:
            # Never the name itself: an error description is ASCII, without quotes.
            raise _Refused(InvalidRequestError("Un parametre du formulaire est repete."))
        form[name] = value
    return form


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """The client's identifier and secret, from Basic authentication or from the form,
    never both (RFC 6749, section 2.3.1)."""
    try:
        basic_id, basic_secret = extract_basic_authorization(request.headers)
    except UnicodeDecodeError:
        raise _Refused(_invalid_client()) from None
    if basic_id is not None:
        if "client_secret" in form:
            raise _Refused(
                InvalidRequestError("Une seule methode d'authentification du client a la fois.")
            )
        if basic_secret is None:
            raise _Refused(_invalid_client())
        return str(basic_id), str(basic_secret)
    if request.headers.get("authorization"):
        # Another scheme (Bearer…): not a client authentication this endpoint knows.
        raise _Refused(_invalid_client())
    if not form.get("client_id") or not form.get("client_secret"):
        raise _Refused(_invalid_client())
    return form["client_id"], form["client_secret"]


def _invalid_client() -> InvalidClientError:
    # 401 with a Basic challenge, whatever the method: Basic is the one every client knows.
    return InvalidClientError("Client inconnu, revoque, ou secret incorrect.", status_code=401)


def _token_responses() -> Responses:
    return merge(
        {
            200: {
                "description": "An access token",
                "headers": {
                    "Cache-Control": {
                        "description": "`no-store`",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                },
            },
            400: {
                "description": (
                    "`invalid_request`, `unsupported_grant_type`, `invalid_scope`, "
                    "`unauthorized_client` (the organisation is suspended): RFC 6749's error"
                ),
                "model": OAuthError,
            },
            401: {
                "description": "`invalid_client`: RFC 6749's error, with a Basic challenge",
                "headers": {"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}},
                "model": OAuthError,
            },
        },
        raises(PayloadTooLarge),
    )


_TOKEN_REQUEST = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
                        "scope": {
                            "type": "string",
                            "description": "Optional: the client's role, or nothing",
                        },
                        "client_id": {
                            "type": "string",
                            "description": "client_secret_post (else Basic authentication)",
                        },
                        "client_secret": {"type": "string", "description": "client_secret_post"},
                    },
                }
            }
        },
    }
}


@server_router.post(
    TOKEN_PATH,
    summary="Get an access token (OAuth2 client credentials)",
    description=(
        "RFC 6749, section 4.4. The client authenticates with HTTP Basic "
        "(`client_secret_basic`) or with `client_id` and `client_secret` in the form "
        "(`client_secret_post`). The token is a JWT (ES256) to send as "
        "`Authorization: Bearer …` on `/v1/…`; it acts as an API key of the client's role "
        "and organisation, and stops working when the client is revoked. Errors are RFC "
        "6749's JSON (`OAuthError`), not problem details."
    ),
    response_model=TokenResponse,
    responses=_token_responses(),
    openapi_extra=_TOKEN_REQUEST,
)
async def token(request: Request, session: DBSession) -> JSONResponse:
    try:
        answer = await _token(request, session)
    except _Refused as refused:
        return _oauth_error(refused.error)
    return JSONResponse(answer.model_dump(), headers=_NO_STORE)


async def _token(request: Request, session: DBSession) -> TokenResponse:
    settings: Settings = request.app.state.settings
    form = _form(request, await request.body())
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _Refused(InvalidRequestError("Le parametre grant_type manque."))
    if grant_type != GRANT_TYPE:
        # Never the grant asked for in the answer: it may be anything.
        unsupported = UnsupportedGrantTypeError(GRANT_TYPE)
        unsupported.description = f"Seul grant_type={GRANT_TYPE} est accepte."
        raise _Refused(unsupported)
    client_id, secret = _credentials(request, form)
    found = await authenticate_client(session, client_id, secret, hashers(settings))
    if found is None or found.client.revoked_at is not None:
        raise _Refused(_invalid_client())
    if any(level.status is OrganizationStatus.SUSPENDED for level in found.chain):
        raise _Refused(UnauthorizedClientError("L'organisation de ce client est suspendue."))
    granted = scope_of(found.client.role)
    requested = form.get("scope", "").split()
    if any(scope != granted for scope in requested):
        raise _Refused(InvalidScopeError(f"Le seul scope de ce client est {granted}."))
    issued = issue(settings, found.client)
    return TokenResponse(
        access_token=issued.access_token,
        token_type="Bearer",  # noqa: S106 (a type)
        expires_in=issued.expires_in,
        scope=issued.scope,
    )


@server_router.get(
    JWKS_PATH,
    summary="The public keys that verify access tokens (JWK Set)",
    description="During a rotation, the previous key too: its tokens verify until they expire.",
)
async def jwks(request: Request) -> JSONResponse:
    keys = signing_keys(request.app.state.settings)
    return JSONResponse(keys.jwks(), headers=_PUBLIC_CACHE)


@server_router.get(METADATA_PATH, summary="The authorization server's metadata (RFC 8414)")
async def metadata(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    base = issuer(settings)
    body = {
        "issuer": base,
        "token_endpoint": base + TOKEN_PATH,
        "jwks_uri": base + JWKS_PATH,
        "grant_types_supported": [GRANT_TYPE],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "response_types_supported": [],
        "scopes_supported": ["agent", "tenant_admin"],
        "service_documentation": base + "/docs",
        "ui_locales_supported": ["fr"],
        # Not RFC 8414's: what a resource server needs to check a token.
        "access_token_signing_alg_values_supported": [ALGORITHM],
        "access_token_audience": audience(settings),
    }
    return JSONResponse(body, headers=_PUBLIC_CACHE)


# --- the clients, managed by the operator and by tenant admins --------------------------

admin_router = APIRouter(prefix="/v1/admin", tags=["operator"])
tenant_router = APIRouter(prefix="/v1/organization/oauth-clients", tags=["tenant"])


OrganizationParam = Annotated[
    uuid.UUID | None,
    Query(description="An EPCI admin may name one of its communes; default: its own"),
]


def _service(request: Request, session: DBSession, principal: Principal) -> OAuthClientService:
    hasher = KeyHasher.from_secret(request.app.state.settings.require_secret_key())
    return OAuthClientService(session, principal.scope, hasher)


async def _list(
    service: OAuthClientService,
    organization_id: uuid.UUID,
    page: PageParams,
    principal: Principal,
) -> Page[OAuthClientOut]:
    # The clients the caller manages: none above its own role.
    clients = await service.list_page(organization_id, page, caller_role=principal.role)
    rows, cursor = next_cursor(list(clients), page, lambda c: (c.created_at, c.id))
    return Page(items=[client_out(c) for c in rows], next_cursor=cursor)


async def _create(
    service: OAuthClientService,
    organization: Organization,
    payload: OAuthClientCreate,
    principal: Principal,
    response: Response,
    audit: AuditTrail,
) -> OAuthClientCreated:
    response.headers["Cache-Control"] = "no-store"
    return await create_recorded(service, organization, payload, caller=principal, audit=audit)


async def _revoke(
    service: OAuthClientService, client_uuid: uuid.UUID, principal: Principal, audit: AuditTrail
) -> None:
    await revoke_recorded(service, client_uuid, caller=principal, audit=audit)


@admin_router.get(
    "/organizations/{organization_id}/oauth-clients", summary="List a tenant's OAuth2 clients"
)
async def admin_list_clients(
    organization_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    page: PageParams,
) -> Page[OAuthClientOut]:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    return await _list(_service(request, session, principal), organization.id, page, principal)


@admin_router.post(
    "/organizations/{organization_id}/oauth-clients",
    status_code=status.HTTP_201_CREATED,
    summary="Create an OAuth2 client for a tenant; the secret is shown once",
)
async def admin_create_client(
    organization_id: uuid.UUID,
    payload: OAuthClientCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> OAuthClientCreated:
    organization = await OrganizationService(session, principal.scope).get(organization_id)
    service = _service(request, session, principal)
    return await _create(service, organization, payload, principal, response, audit)


@admin_router.delete(
    "/oauth-clients/{oauth_client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an OAuth2 client: its tokens stop working at once, in every process",
)
async def admin_revoke_client(
    oauth_client_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: OperatorAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), oauth_client_id, principal, audit)


@tenant_router.get(
    "",
    summary="List the OAuth2 clients of your organisation (or of one of your communes)",
    responses=raises(NotFound),
)
async def list_clients(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    page: PageParams,
    organization_id: OrganizationParam = None,
) -> Page[OAuthClientOut]:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    return await _list(_service(request, session, principal), organization.id, page, principal)


@tenant_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an OAuth2 client for your organisation (or one of your communes); "
    "the secret is shown once",
    responses=raises(NotFound),
)
async def create_client(
    payload: OAuthClientCreate,
    request: Request,
    response: Response,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
    organization_id: OrganizationParam = None,
) -> OAuthClientCreated:
    organization = await OrganizationService(session, principal.scope).managed(
        principal.organization_id, organization_id
    )
    service = _service(request, session, principal)
    return await _create(service, organization, payload, principal, response, audit)


@tenant_router.delete(
    "/{oauth_client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of your OAuth2 clients: its tokens stop working at once",
)
async def revoke_client(
    oauth_client_id: uuid.UUID,
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    audit: Audit,
) -> None:
    await _revoke(_service(request, session, principal), oauth_client_id, principal, audit)
