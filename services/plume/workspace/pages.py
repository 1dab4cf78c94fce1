"""The workspace's pages rendered: Jinja2 templates shipped with the package, autoescaped, each
answer with its Content-Security-Policy (no inline script or style: everything is in
/app/static), and the document's text made HTML with its gaps highlighted."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.responses import HTMLResponse

from plume.drafting.offline import TO_COMPLETE

PARIS = ZoneInfo("Europe/Paris")
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

STATUS_LABELS = {
    "draft": "À relire",
    "processing": "En cours de rédaction",
    "approved": "Approuvé",
    "rejected": "Rejeté",
    "failed": "En échec",
    "erased": "Effacé",
}


def content_security_policy(issuer: str | None) -> str:
    """Same-origin scripts, styles and images only; no framing. A form may post to Plume, and
    sign-out's redirection goes on to the identity provider (Chrome holds redirections after a
    form to `form-action`)."""
    form_action = "'self'"
    if issuer:
        parts = urlsplit(issuer)
        form_action += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors 'none'"
    )


def highlight_gaps(text: str | None) -> Markup:
    """The text escaped, each « [À COMPLÉTER] » in a <mark> (what the agent must fill)."""
    escaped = str(escape(text or ""))
    marked = escaped.replace(TO_COMPLETE, f"<mark>{TO_COMPLETE}</mark>")
    return Markup(marked)  # noqa: S704 - built from escaped text only


def french_date(value: datetime | None) -> str:
    """A moment as a French reader expects it: Paris time, day first."""
    return f"{value.astimezone(PARIS):%d/%m/%Y à %H:%M}" if value is not None else ""


def amount(value: Decimal, metric: str) -> str:
    """A quota's amount as French readers write it: « 1 200 » requests, « 12,50 € »."""
    if metric == "cost_eur":
        return f"{value:,.2f} €".replace(",", "\u202f").replace(".", ",")
    return f"{int(value):,}".replace(",", "\u202f")


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["gaps"] = highlight_gaps
    env.filters["date_fr"] = french_date
    env.filters["amount"] = amount
    env.globals["status_labels"] = STATUS_LABELS
    return env


def render(
    template: str,
    context: dict[str, Any],
    *,
    issuer: str | None,
    status_code: int = 200,
) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=security_headers(issuer))


def security_headers(issuer: str | None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(issuer),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def static_file(name: str) -> tuple[bytes, str] | None:
    """One of the workspace's own assets by its bare name, or None (no path walks)."""
    path = STATIC / name
    media_type = STATIC_TYPES.get(path.suffix)
    if "/" in name or name.startswith(".") or media_type is None or not path.is_file():
        return None
    return path.read_bytes(), media_type
