"""/docs is served by Plume alone: its page loads nothing from another origin, and the
assets it names are Plume's; PLUME_DOCS=false removes it, with /openapi.json."""

from __future__ import annotations

import re

from httpx import AsyncClient

from tests.support.clients import AppFactory, client_for
from tests.support.problems import assert_problem
from tests.support.settings import make_settings

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


async def test_docs_use_only_same_origin_assets_and_they_are_served(client: AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    references = {a or b for a, b in _REFERENCE.findall(page.text)}
    assert references >= {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/openapi.json",
    }, references
    for reference in references:
        # Same origin: a path on this server, never a CDN (no scheme, no //host).
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
        served = await client.get(reference)
        assert served.status_code == 200, reference
        assert served.content, reference
    assert "cdn" not in page.text.lower()
    # The browser is told so: scripts and styles from this origin only.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "http" not in policy


async def test_assets_have_their_content_types_and_nothing_else_is_served(
    client: AsyncClient,
) -> None:
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in script.content
    style = await client.get("/docs/assets/swagger-ui.css")
    assert style.headers["content-type"].startswith("text/css")
    assert_problem(await client.get("/docs/assets/index.html"), 404, "not_found")
    assert_problem(await client.get("/docs/assets/..%2F__init__.py"), 404, "not_found")
    # The ReDoc page, which loads its script from a CDN, is gone.
    assert_problem(await client.get("/redoc"), 404, "not_found")


async def test_docs_can_be_switched_off(make_app: AppFactory) -> None:
    settings = make_settings(make_app.settings.database_url, docs=False)
    async with client_for(make_app(settings=settings)) as http:
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
            assert_problem(await http.get(path), 404, "not_found")
        # The problem pages stay: every error's `type` points at them.
        assert (await http.get("/problems/not_found")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
