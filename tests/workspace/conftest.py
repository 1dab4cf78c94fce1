"""The workspace's tests sign in as the identity tests do: the same real OpenID provider, the
application configured for it, and a browser-like client (https, cookies kept)."""

from tests.identity.conftest import app, browser, oidc_settings, provider

__all__ = ["app", "browser", "oidc_settings", "provider"]
