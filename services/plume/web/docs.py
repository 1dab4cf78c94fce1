"""Documentation Plume serves itself, out of the OpenAPI description: Swagger UI at /docs,
from the assets of the `swagger-ui-bundle-v2` package (no CDN), and one French page per
problem code at /problems/{code}, where every problem's `type` points."""

from __future__ import annotations

from functools import cache
from html import escape

from fastapi import APIRouter, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from plume.errors import PROBLEMS_PATH, NotFound, problem_classes

ASSETS = "/docs/assets/"
# The files /docs needs, and nothing else of the package.
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI runs one inline script (its settings); everything else comes from here.
_DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def docs_router(openapi_url: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title="Plume — API",
            swagger_js_url=ASSETS + "swagger-ui-bundle.js",
            swagger_css_url=ASSETS + "swagger-ui.css",
            swagger_favicon_url=ASSETS + "favicon-32x32.png",
            oauth2_redirect_url=None,
            # Swagger UI would otherwise send the description to a public validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = _DOCS_POLICY
        return page

    @router.get(ASSETS + "{name}")
    async def asset(name: str) -> Response:
        media_type = _ASSET_TYPES.get(name)
        if media_type is None:
            raise NotFound("Aucune ressource à cette adresse.")
        return Response(
            _asset(name),
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return router


@cache
def _asset(name: str) -> bytes:
    data: bytes = (swagger_ui_path / name).read_bytes()
    return data


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#1e1e1e}code{background:#f0f0f0;padding:0 .2em}"
)


def _page(title: str, body: str) -> HTMLResponse:
    html = (
        '<!DOCTYPE html>\n<html lang="fr">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} — Plume</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": _PAGE_POLICY})


problems_router = APIRouter(include_in_schema=False)


@problems_router.get(PROBLEMS_PATH.rstrip("/"))
async def problem_index() -> HTMLResponse:
    items = "\n".join(
        f'<li><a href="{PROBLEMS_PATH}{code}"><code>{code}</code></a> ({cls.status}) : '
        f"{escape(cls.title)}</li>"
        for code, cls in problem_classes().items()
    )
    return _page(
        "Codes d'erreur",
        "<h1>Codes d'erreur de l'API Plume</h1>\n"
        "<p>Chaque erreur de l'API est un objet « problem » (RFC 9457) dont le champ "
        "<code>code</code> est l'un de ceux-ci ; son champ <code>type</code> mène à la page "
        f"du code.</p>\n<ul>\n{items}\n</ul>",
    )


@problems_router.get(PROBLEMS_PATH + "{code}")
async def problem_page(code: str) -> HTMLResponse:
    cls = problem_classes().get(code)
    if cls is None:
        raise NotFound("Aucun code d'erreur ne porte ce nom.")
    return _page(
        cls.title,
        f"<h1>{escape(cls.title)}</h1>\n"
        f"<p>Code <code>{escape(code)}</code>, statut HTTP {cls.status}.</p>\n"
        f"<h2>Ce que cela signifie</h2>\n<p>{escape(cls.default_detail)}</p>\n"
        f"<h2>Que faire ?</h2>\n<p>{escape(cls.advice)}</p>\n"
        "<p>Le champ <code>detail</code> de la réponse précise le cas ; pour une erreur de "
        "validation, <code>errors</code> nomme chaque champ en cause.</p>\n"
        f'<p><a href="{PROBLEMS_PATH.rstrip("/")}">Tous les codes d\'erreur</a></p>',
    )
