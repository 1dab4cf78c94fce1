"""GET /metrics: the Prometheus exposition, behind a bearer token when PLUME_METRICS_TOKEN is
set (required in production, unless PLUME_METRICS_PORT serves it on a port of its own, and
then this route does not exist: see plume.cli)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from plume.errors import Unauthenticated
from plume.metrics.registry import exposition
from plume.web.openapi import download, merge, raises

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (bearer PLUME_METRICS_TOKEN if set)",
    response_class=Response,
    responses=merge(
        download("The Prometheus text exposition", "text/plain"), raises(Unauthenticated)
    ),
)
async def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise Unauthenticated("Jeton de lecture des métriques absent ou incorrect.")
    body, media_type = exposition()
    return Response(body, media_type=media_type)
