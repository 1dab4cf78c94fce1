"""Liveness and readiness probes."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from plume.runtime.migrations import current_revision

router = APIRouter(tags=["operations"])
logger = structlog.get_logger("plume.health")


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable and migrations at head")
async def readyz(request: Request) -> JSONResponse:
    expected = request.app.state.migration_head
    try:
        async with request.app.state.session_factory() as session:
            current = await current_revision(session)
    except Exception as exc:
        logger.warning("not_ready", reason="database", error_type=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migration": current, "expected": expected},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migration": current})
