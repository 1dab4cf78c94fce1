"""GET /metrics: the Prometheus exposition, behind an optional bearer token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from plume.errors import Unauthenticated
from plume.metrics.registry import exposition

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics (bearer PLUME_METRICS_TOKEN if set)")
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise Unauthenticated("Jeton de lecture des métriques absent ou incorrect.")
    body, media_type = exposition()
    return Response(body, media_type=media_type)
