"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from plume.runtime.draining import stopping
from plume.runtime.migrations import current_revision

router = APIRouter(tags=["operations"])
logger = structlog.get_logger("plume.health")

_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database does not answer, or its migrations are not at head "
        "(which revision is in the logs, not here), or the process is stopping (draining) or "
        "still loading what it needs (warming, PLUME_WARM_UP)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"enum": ["unavailable", "draining", "warming"]},
                        "database": {"enum": ["unreachable", "ok"]},
                        "migrations": {"const": "behind"},
                    },
                }
            }
        },
    }
}


class Ready(BaseModel):
    status: str = "ok"
    database: str = "ok"


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, migrations at head, not stopping",
    response_model=Ready,
    responses=_NOT_READY,
)
async def readyz(request: Request) -> JSONResponse:
    if stopping.is_set():
        # Draining: the load balancer must send no new request; those in flight finish.
        return JSONResponse({"status": "draining"}, status_code=503)
    if not request.app.state.warmed.is_set():
        # Loading the pseudonymisation's model (PLUME_WARM_UP): no request yet.
        return JSONResponse({"status": "warming"}, status_code=503)
    expected = request.app.state.migration_head
    try:
        async with request.app.state.session_factory() as session:
            current = await current_revision(session)
    except Exception as exc:
        logger.warning("not_ready", reason="database", error_type=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        # The revisions are for the operator's eyes (logs), not for whoever probes.
        logger.warning("not_ready", reason="migrations", migration=current, expected=expected)
        return JSONResponse(
            {"status": "unavailable", "database": "ok", "migrations": "behind"}, status_code=503
        )
    return JSONResponse(Ready().model_dump())
