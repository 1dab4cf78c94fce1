"""A real OpenID provider for the sign-in tests: oidc-provider-mock (Flask, Authlib) served
on 127.0.0.1 in a thread, with a thin WSGI layer in front of it that can answer userinfo as
a signed JWT (as ProConnect does), signed with a key of its own published in the JWKS.

The mock signs ID tokens with its own RSA key (RS256), accepts any client id and secret,
and gives each user the claims set with PUT /users/{sub}: non-standard claims (usual_name,
siret, acr) go into the ID token and userinfo; standard ones only with their scope
(given_name needs `profile`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
USERINFO_KID = "plume-test-userinfo"


@dataclass
class SignedUserinfo:
    """The WSGI layer: JWKS with one more key; userinfo as a JWT while `enabled`."""

    inner: Any
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": USERINFO_KID}))
    enabled: bool = False
    client_id: str = "plume-test"
    # How many userinfo answers were signed JWTs.
    served: int = 0

    def _call_inner(self, environ: Environ) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = status, headers

        body = b"".join(self.inner(environ, start))
        return captured["status"], captured["headers"], body

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/jwks":
            status, headers, body = self._call_inner(environ)
            keys = json.loads(body)
            keys["keys"].append(self.key.as_dict(private=False))
            return self._answer(start_response, status, "application/json", json.dumps(keys))
        if path == "/userinfo" and self.enabled:
            status, headers, body = self._call_inner(environ)
            if not status.startswith("200"):
                start_response(status, headers)
                return [body]
            claims = json.loads(body)
            host = environ["HTTP_HOST"]
            claims.update({"iss": f"http://{host}", "aud": self.client_id})
            token = jwt.encode({"alg": "RS256", "kid": USERINFO_KID}, claims, self.key)
            self.served += 1
            return self._answer(start_response, "200 OK", "application/jwt", token)
        result: Iterable[bytes] = self.inner(environ, start_response)
        return result

    @staticmethod
    def _answer(start: StartResponse, status: str, media_type: str, text: str) -> list[bytes]:
        data = text.encode()
        start(status, [("Content-Type", media_type), ("Content-Length", str(len(data)))])
        return [data]


@dataclass
class MockProvider:
    issuer: str
    layer: SignedUserinfo

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text

    async def consent(self, authorize_url: str, sub: str) -> str:
        """Drive the provider's consent form as a browser would: the form, then the
        choice of `sub`; returns where the provider redirects (Plume's callback)."""
        async with httpx.AsyncClient() as browser:
            form = await browser.get(authorize_url)
            assert form.status_code == 200, form.text
            assert 'name="sub"' in form.text
            answer = await browser.post(authorize_url, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@contextmanager
def running_provider() -> Iterator[MockProvider]:
    app = oidc_provider_mock.app(require_nonce=True)
    layer = SignedUserinfo(app.wsgi_app)
    app.wsgi_app = layer  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    issuer = f"http://127.0.0.1:{server.server_port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(issuer + "/.well-known/openid-configuration").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the OpenID provider did not start"
        time.sleep(0.05)
    try:
        yield MockProvider(issuer, layer)
    finally:
        server.shutdown()
        thread.join(5)
