"""HTTP routes for the audit trail: list, export, verify, signed head, public key."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from plume.audit import service
from plume.audit.schemas import (
    AuditEntryOut,
    PublicKey,
    Receipt,
    Verification,
    VerificationSummary,
)
from plume.audit.signing import ReceiptSigner
from plume.credentials.auth import Principal, TenantAdmin
from plume.dates import REPORT_DAY_PATTERN, date_range, utc_bounds
from plume.errors import NotFound
from plume.web.openapi import download, merge, raises
from plume.web.pagination import Page, PageParams, next_cursor
from plume.web.transaction import DBSession

router = APIRouter(prefix="/v1/audit", tags=["audit"])

OrganizationParam = Annotated[
    uuid.UUID | None,
    Query(
        description="Whose chain: default the caller's; an EPCI admin may name one of its "
        "communes, the operator any organisation"
    ),
]


_HEX = "[0-9a-fA-F]"
_ID_OR_ALL = f"^(all|{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})$"


def _chain_of(principal: Principal, organization_id: uuid.UUID | None) -> uuid.UUID:
    target = organization_id or principal.organization_id
    if not principal.scope.includes(target):
        raise NotFound("Aucune organisation ne porte cet identifiant.")
    return target


def signer(request: Request) -> ReceiptSigner:
    existing: ReceiptSigner | None = getattr(request.app.state, "receipt_signer", None)
    if existing is None:
        existing = ReceiptSigner(request.app.state.settings.require_secret_key())
        request.app.state.receipt_signer = existing
    return existing


@router.get("", summary="The audit trail, newest first", responses=raises(NotFound))
async def list_entries(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    page: PageParams,
    organization_id: OrganizationParam = None,
    start: Annotated[
        date | None,
        Query(
            alias="from",
            description="First day (Paris), inclusive; 2000-01-01 to 2100-12-31",
            json_schema_extra={"pattern": REPORT_DAY_PATTERN},
        ),
    ] = None,
    end: Annotated[
        date | None,
        Query(
            alias="to",
            description="Last day (Paris), inclusive; not before `from`",
            json_schema_extra={"pattern": REPORT_DAY_PATTERN},
        ),
    ] = None,
    action: Annotated[str | None, Query(max_length=40, description="e.g. draft.review")] = None,
    actor: Annotated[uuid.UUID | None, Query(description="The acting key's id")] = None,
) -> Page[AuditEntryOut]:
    first, last = date_range(start, end, request.app.state.clock.now())
    lower, upper = utc_bounds(first, last)
    rows = await service.list_page(
        session,
        _chain_of(principal, organization_id),
        page,
        start=lower,
        end=upper,
        action=action,
        actor=actor,
    )
    items, cursor = next_cursor(rows, page, service.cursor_key)
    chain = _chain_of(principal, organization_id)
    addresses = await service.client_addresses(session, chain, [e.seq for e in items])
    return Page(
        items=[service.entry_out(e, addresses.get(e.seq)) for e in items], next_cursor=cursor
    )


@router.get(
    "/export",
    summary="The whole chain, oldest first, as JSON lines or CSV (streamed)",
    response_class=StreamingResponse,
    responses=merge(
        download("The chain, as an attachment", "application/x-ndjson", "text/csv"),
        raises(NotFound),
    ),
)
async def export_entries(
    request: Request,
    principal: TenantAdmin,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    organization_id: OrganizationParam = None,
) -> StreamingResponse:
    organization = _chain_of(principal, organization_id)
    lines = service.export(request.app.state.session_factory, principal.scope, organization, format)
    media_type = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    filename = f"audit-{organization}.{format}"
    return StreamingResponse(
        lines,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/verify",
    summary="Verify a chain (the operator: any, or `all`)",
    response_model=None,
    responses=raises(NotFound),
)
async def verify(
    session: DBSession,
    principal: TenantAdmin,
    organization_id: Annotated[
        str | None,
        Query(pattern=_ID_OR_ALL, description="An organisation id, or `all` for the operator"),
    ] = None,
    receipt_seq: Annotated[int | None, Query(ge=1)] = None,
    receipt_hash: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$")] = None,
) -> Verification | VerificationSummary:
    if organization_id == "all":
        if not principal.scope.all_organizations:
            raise NotFound("Aucune organisation ne porte cet identifiant.")
        chains = [
            await _verify_one(session, principal, organization, None, None)
            for organization in await service.chain_ids(session)
        ]
        broken = next((c for c in chains if not c.valid), None)
        return VerificationSummary(
            valid=broken is None,
            checked=sum(c.checked for c in chains),
            first_invalid_seq=broken.first_invalid_seq if broken else None,
            chains=chains,
        )
    target = uuid.UUID(organization_id) if organization_id else None
    organization = _chain_of(principal, target)
    return await _verify_one(session, principal, organization, receipt_seq, receipt_hash)


async def _verify_one(
    session: DBSession,
    principal: Principal,
    organization_id: uuid.UUID,
    receipt_seq: int | None,
    receipt_hash: str | None,
) -> Verification:
    result = await service.verify(session, organization_id, principal.scope)
    matches = None
    if receipt_seq is not None and receipt_hash is not None:
        matches = await service.hash_at(session, organization_id, receipt_seq) == receipt_hash
    return Verification(
        organization_id=organization_id,
        valid=result.valid,
        checked=result.checked,
        first_invalid_seq=result.first_invalid_seq,
        receipt_matches=matches,
    )


@router.get(
    "/head",
    summary="The chain's latest entry, signed by the server (a receipt)",
    responses=raises(NotFound),
)
async def head(
    request: Request,
    session: DBSession,
    principal: TenantAdmin,
    organization_id: OrganizationParam = None,
) -> Receipt:
    organization = _chain_of(principal, organization_id)
    return await service.head_receipt(session, organization, signer(request))


@router.get("/public-key", summary="The Ed25519 public key that signs receipts")
async def public_key(request: Request) -> PublicKey:
    key = signer(request)
    return PublicKey(
        algorithm="Ed25519", key_id=key.key_id, public_key=key.public_key, pem=key.public_key_pem
    )
