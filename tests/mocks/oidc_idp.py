"""A mock OpenID Connect identity provider that signs real JWTs, for the admin's single sign-on.

Started by tests on a free port (``with MockIdp() as idp: ... idp.issuer ...``), driven from the
test through its attributes (it runs in a thread of the test process):

- ``GET {issuer}/.well-known/openid-configuration``: discovery (it announces RS256, ES256 and, as
  a trap, HS256 and none: the admin must refuse those whatever the IdP says);
- ``GET {issuer}/jwks``: the public halves of the current keys (one RS256, one ES256);
  ``rotate(alg)`` makes a new key with a new kid and drops the old one from the JWKS;
- ``GET {issuer}/authorize``: approves ``user`` at once and redirects back with a code; insists
  on response_type=code, the client id and PKCE with method S256 (else 400);
- ``POST {issuer}/token``: the code (single use), the same redirect_uri, the code_verifier
  against the challenge, the client's authentication (Basic or form, when the client has a
  secret); answers an id_token signed with ``alg``;
- ``fault``: what is wrong with the next id_tokens (see FAULTS), for the refusal tests;
  ``deny``: the person declines (back with ``error=access_denied``); ``announced_issuer``: the
  discovery document names another issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import orjson
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

# What can be wrong with an id_token (``MockIdp.fault``):
FAULTS = (
    "expired",            # exp two hours ago (far beyond any clock skew)
    "wrong_signature",    # signed by a key of the same kid that the JWKS does not hold
    "unknown_kid",        # signed by a key whose kid is nowhere in the JWKS
    "wrong_audience",     # aud is another client
    "wrong_issuer",       # iss is another issuer
    "no_nonce",           # no nonce claim
    "wrong_nonce",        # a nonce of another sign-in
    "future_iat",         # issued an hour from now
    "alg_none",           # alg "none", no signature
    "alg_hs256",          # HS256 with the RSA key's public modulus as the "secret"
    "multi_aud_no_azp",   # two audiences and no azp
)


@dataclass
class User:
    sub: str = "user-1"
    email: str = "ada@example.com"
    name: str = "Ada Lovelace"
    groups: list[str] = field(default_factory=lambda: ["platform-admins"])
    email_verified: bool = True


@dataclass
class _Key:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        jwk: dict[str, Any] = orjson.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def _new_key(alg: str, kid: str) -> _Key:
    if alg in ("RS256", "PS256"):
        return _Key(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _Key(kid, alg, ec.generate_private_key(ec.SECP256R1()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None


class MockIdp:
    def __init__(self, *, client_id: str = "omniroute", client_secret: str = "idp-client-secret",
                 host: str = "127.0.0.1") -> None:
        self.client_id = client_id
        self.client_secret = client_secret   # "": a public client (PKCE only)
        self.user = User()
        self.alg = "RS256"
        self.fault: str | None = None
        self.announced_issuer: str | None = None   # discovery names another issuer (a look-alike)
        self.deny = False   # the person declines at the IdP: back with error=access_denied
        self.keys: dict[str, _Key] = {"RS256": _new_key("RS256", "rsa-1"), "ES256": _new_key("ES256", "ec-1")}
        self.jwks_fetches = 0
        self.token_calls = 0
        self.token_errors: list[str] = []
        self._codes: dict[str, _Grant] = {}
        self._generation = 1
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.issuer = f"{self.url}/idp"
        app = Starlette(routes=[
            Route("/idp/.well-known/openid-configuration", self._discovery),
            Route("/idp/jwks", self._jwks),
            Route("/idp/authorize", self._authorize),
            Route("/idp/token", self._token, methods=["POST"]),
        ])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"mock-idp-{self.port}", daemon=True)

    # --- test controls ---------------------------------------------------------------------------

    def rotate(self, alg: str) -> str:
        """A new key for `alg` under a new kid; the old one leaves the JWKS. Returns the new kid."""
        self._generation += 1
        kid = f"{'rsa' if alg.startswith(('RS', 'PS')) else 'ec'}-{self._generation}"
        self.keys[alg] = _new_key(alg, kid)
        return kid

    def sign(self, claims: dict[str, Any], alg: str | None = None) -> str:
        """An id_token with these claims, signed as ``fault`` says (None: correctly)."""
        alg = alg or self.alg
        if self.fault == "alg_none":
            header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
            return f"{header}.{_b64(orjson.dumps(claims))}."
        if self.fault == "alg_hs256":
            secret = self.keys["RS256"].public_jwk()["n"].encode()
            return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": self.keys["RS256"].kid})
        key = self.keys[alg]
        private, kid = key.private, key.kid
        if self.fault == "wrong_signature":
            private = _new_key(alg, kid).private
        elif self.fault == "unknown_kid":
            private, kid = _new_key(alg, "never-published").private, "never-published"
        return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})

    def claims(self, nonce: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": self.user.sub, "aud": self.client_id, "iat": now, "exp": now + 300,
            "email": self.user.email, "email_verified": self.user.email_verified, "name": self.user.name,
            "groups": list(self.user.groups), "nonce": nonce}
        match self.fault:
            case "expired":
                claims.update(iat=now - 7200, exp=now - 3600)
            case "wrong_audience":
                claims["aud"] = "another-client"
            case "wrong_issuer":
                claims["iss"] = f"{self.url}/evil"
            case "no_nonce":
                del claims["nonce"]
            case "wrong_nonce":
                claims["nonce"] = secrets.token_urlsafe(16)
            case "future_iat":
                claims.update(iat=now + 3600, exp=now + 7200)
            case "multi_aud_no_azp":
                claims["aud"] = [self.client_id, "another-client"]
        if claims.get("nonce") is None:
            claims.pop("nonce", None)
        return claims

    # --- endpoints -------------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.announced_issuer or self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256", "none"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile", "groups"]})

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        return JSONResponse({"keys": [key.public_jwk() for key in self.keys.values()]})

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        problems = [name for name, ok in (
            ("response_type=code", q.get("response_type") == "code"),
            ("client_id", q.get("client_id") == self.client_id),
            ("redirect_uri", bool(q.get("redirect_uri"))),
            ("openid scope", "openid" in q.get("scope", "").split()),
            ("code_challenge", len(q.get("code_challenge", "")) >= 43),
            ("code_challenge_method=S256", q.get("code_challenge_method") == "S256")) if not ok]
        if problems:
            return PlainTextResponse(f"invalid_request: {', '.join(problems)}", status_code=400)
        if self.deny:
            back_error = {"error": "access_denied", "error_description": "The user declined.",
                          **({"state": q["state"]} if "state" in q else {})}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back_error)}", status_code=302)
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(client_id=q["client_id"], redirect_uri=q["redirect_uri"],
                                   challenge=q["code_challenge"], nonce=q.get("nonce"))
        back = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", status_code=302)

    def _token_error(self, error: str, description: str, status: int = 400) -> Response:
        self.token_errors.append(description)
        return JSONResponse({"error": error, "error_description": description}, status_code=status)

    async def _token(self, request: Request) -> Response:
        self.token_calls += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        if client_id != self.client_id:
            return self._token_error("invalid_client", "unknown client", 401)
        if self.client_secret and not hmac.compare_digest(secret, self.client_secret):
            return self._token_error("invalid_client", "wrong client secret", 401)
        if form.get("grant_type") != "authorization_code":
            return self._token_error("unsupported_grant_type", "only authorization_code")
        grant = self._codes.pop(str(form.get("code", "")), None)
        if grant is None:
            return self._token_error("invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._token_error("invalid_grant", "redirect_uri differs from the authorization's")
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            return self._token_error("invalid_grant", "PKCE verifier does not match the challenge")
        id_token = self.sign(self.claims(grant.nonce))
        return JSONResponse({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                             "expires_in": 300, "id_token": id_token})

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> MockIdp:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mock IdP did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> MockIdp:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()
