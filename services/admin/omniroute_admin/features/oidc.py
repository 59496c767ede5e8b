"""Single sign-on with OpenID Connect (authorisation code + PKCE): the provider's discovery
document and keys, the login attempt kept server-side, the id_token check, and the mapping of the
IdP's groups to a role and teams. The HTTP routes are api/oidc.py.

What is checked, and why:
- the discovery document must name the configured issuer (a look-alike document is refused);
- an id_token's algorithm must be one the IdP announces AND one of ALLOWED_ALGORITHMS (asymmetric
  only: never "none", never HS*, whose "secret" would be the public key anyone can fetch);
- its key comes from the IdP's JWKS by `kid`; an unknown `kid` means the IdP rotated its keys,
  so the JWKS is fetched again, at most once per JWKS_REFETCH_INTERVAL_S (a stream of tokens with
  made-up kids must not turn the admin into a JWKS fetching loop);
- iss, aud (and azp when there are several audiences), exp / iat / nbf with the configured clock
  skew, and the nonce this login attempt sent;
- state and the PKCE verifier live in Redis for LOGIN_TTL_S, taken (GETDEL) once: a replayed
  callback finds nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import orjson
import redis.asyncio as redis

from omniroute.settings import Settings
from omniroute_admin import access

ALLOWED_ALGORITHMS = ("RS256", "ES256", "PS256")
LOGIN_TTL_S = 600
DISCOVERY_TTL_S = 3600
JWKS_TTL_S = 3600
JWKS_REFETCH_INTERVAL_S = 30.0
HTTP_TIMEOUT_S = 10.0
CALLBACK_PATH = "/api/auth/oidc/callback"


class OidcError(Exception):
    """A refused sign-in. `reason` is short and stable (the audit row's reason); the message
    says what happened to a person."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    display_name: str
    scopes: str
    groups_claim: str
    role_map: dict[str, access.Role]
    team_map: dict[str, tuple[str, ...]]
    redirect_url: str
    clock_skew_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """None when single sign-on is not configured (no issuer or no client id). A malformed
        map is a ValueError: a gateway that would let nobody (or everybody) in must not start
        quietly."""
        if not settings.oidc_issuer or not settings.oidc_client_id:
            return None
        scopes = settings.oidc_scopes.split()
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        return cls(issuer=settings.oidc_issuer.rstrip("/"), client_id=settings.oidc_client_id,
                   client_secret=settings.oidc_client_secret, display_name=settings.oidc_display_name,
                   scopes=" ".join(scopes), groups_claim=settings.oidc_groups_claim or "groups",
                   role_map=_role_map(settings.oidc_role_map), team_map=_team_map(settings.oidc_team_map),
                   redirect_url=settings.oidc_redirect_url, clock_skew_s=max(0, settings.oidc_clock_skew_s))


def _json_object(raw: str, name: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object (group → …)")
    return value


def _role_map(raw: str) -> dict[str, access.Role]:
    mapped: dict[str, access.Role] = {}
    for group, role in _json_object(raw, "OMNIROUTE_OIDC_ROLE_MAP").items():
        if role not in access.ROLES:
            raise ValueError(f"OMNIROUTE_OIDC_ROLE_MAP: {group!r} maps to {role!r}, not one of {access.ROLES}")
        mapped[str(group)] = role
    return mapped


def _team_map(raw: str) -> dict[str, tuple[str, ...]]:
    mapped: dict[str, tuple[str, ...]] = {}
    for group, teams in _json_object(raw, "OMNIROUTE_OIDC_TEAM_MAP").items():
        if isinstance(teams, str):
            teams = [teams]
        if not isinstance(teams, list) or not all(isinstance(t, str) and t for t in teams):
            raise ValueError(f"OMNIROUTE_OIDC_TEAM_MAP: {group!r} must map to a list of team ids")
        mapped[str(group)] = tuple(teams)
    return mapped


# --- groups → role and teams -----------------------------------------------------------------------

_RANK = {"viewer": 0, "team_admin": 1, "admin": 2, "owner": 3}


def groups_of(claims: dict[str, Any], claim: str) -> list[str]:
    """The groups claim as a list of strings (IdPs send a list, some a single string)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(g) for g in value if isinstance(g, (str, int))]
    return []


def map_groups(config: OidcConfig, groups: list[str]) -> tuple[access.Role | None, tuple[str, ...]]:
    """The highest-ranked role among the person's mapped groups, and the teams of their groups
    (which only a team_admin keeps: the other roles see every team). A group of the team map
    makes its members (at least) team admins of those teams. None: no group is mapped."""
    roles: list[access.Role] = [config.role_map[g] for g in groups if g in config.role_map]
    teams = sorted({t for g in groups for t in config.team_map.get(g, ())})
    if teams:
        roles.append("team_admin")
    if not roles:
        return None, ()
    role = max(roles, key=lambda r: _RANK[r])
    return role, tuple(teams) if role == "team_admin" else ()


# --- PKCE, state, nonce ------------------------------------------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What the callback needs and must not take from the browser: the nonce, the PKCE verifier,
    the redirect_uri the code was issued for, where to go after, and the binding to the browser
    that started it (a cookie), so that a callback URL planted in someone else's browser does not
    sign them in as the attacker."""

    nonce: str
    verifier: str
    redirect_uri: str
    next_path: str
    binding: str


def _attempt_key(settings: Settings, state: str) -> str:
    return f"{settings.env}:oidc-login:{hashlib.sha256(state.encode()).hexdigest()}"


async def remember_attempt(client: redis.Redis, settings: Settings, state: str, attempt: LoginAttempt) -> None:
    record = {"nonce": attempt.nonce, "verifier": attempt.verifier, "redirect_uri": attempt.redirect_uri,
              "next": attempt.next_path, "binding": hashlib.sha256(attempt.binding.encode()).hexdigest()}
    await client.set(_attempt_key(settings, state), orjson.dumps(record), ex=LOGIN_TTL_S)


async def take_attempt(client: redis.Redis, settings: Settings, state: str, binding: str) -> LoginAttempt:
    """The attempt of `state`, removed at once (single use); OidcError when unknown, used,
    expired, or started in another browser."""
    raw = await client.getdel(_attempt_key(settings, state)) if state else None
    if raw is None:
        raise OidcError("state", "This sign-in link is unknown, already used or expired; sign in again.", 400)
    record = orjson.loads(raw)
    presented = hashlib.sha256(binding.encode()).hexdigest()
    if not binding or not hmac.compare_digest(presented, str(record.get("binding", ""))):
        raise OidcError("state", "This sign-in was started in another browser; sign in again.", 400)
    return LoginAttempt(nonce=record["nonce"], verifier=record["verifier"],
                        redirect_uri=record["redirect_uri"], next_path=record["next"], binding=binding)


def safe_next(value: str | None) -> str:
    """Only a path of this site (no //host, no scheme, no backslash tricks); else the dashboard."""
    if (value and value.startswith("/") and not value.startswith(("//", "/\\"))
            and "\\" not in value and not any(ord(c) < 0x20 for c in value)):
        return value
    return "/dashboard"


# --- the provider: discovery, keys, token exchange, id_token check ------------------------------------

class OidcProvider:
    """One identity provider as the admin sees it. Holds the discovery document and the JWKS in
    memory (per admin replica; both are public and cheap to fetch again)."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._discovery: dict[str, Any] | None = None
        self._discovery_at = 0.0
        self._keys: dict[str, dict[str, Any]] = {}   # the JWKS's signing keys by kid
        self._keyless: list[dict[str, Any]] = []      # keys published without a kid
        self._keys_at = 0.0
        self._last_refetch = float("-inf")
        self._lock = asyncio.Lock()
        self.jwks_fetches = 0

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                answer = await client.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError("idp_unreachable", f"The identity provider is unreachable ({type(exc).__name__}).",
                            502) from None
        if answer.status_code != 200:
            raise OidcError("idp_unreachable", f"The identity provider answered {answer.status_code} for {url}.",
                            502)
        try:
            value = answer.json()
        except ValueError:
            raise OidcError("idp_unreachable", f"The identity provider sent no JSON at {url}.", 502) from None
        if not isinstance(value, dict):
            raise OidcError("idp_unreachable", f"The identity provider sent no JSON object at {url}.", 502)
        return value

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is not None and time.monotonic() - self._discovery_at < DISCOVERY_TTL_S:
            return self._discovery
        document = await self._get_json(f"{self.config.issuer}/.well-known/openid-configuration")
        if str(document.get("issuer", "")).rstrip("/") != self.config.issuer:
            raise OidcError("discovery", "The identity provider's discovery document names another issuer.", 502)
        for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(needed), str):
                raise OidcError("discovery", f"The discovery document has no {needed}.", 502)
        self._discovery, self._discovery_at = document, time.monotonic()
        return document

    async def allowed_algorithms(self) -> list[str]:
        announced = (await self.discovery()).get("id_token_signing_alg_values_supported") or ["RS256"]
        return [alg for alg in ALLOWED_ALGORITHMS if alg in announced]

    async def _load_keys(self) -> None:
        document = await self._get_json(str((await self.discovery())["jwks_uri"]))
        self.jwks_fetches += 1
        keys: dict[str, dict[str, Any]] = {}
        keyless: list[dict[str, Any]] = []
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
                continue   # an encryption key, or a type we never verify with
            if entry.get("kid"):
                keys[str(entry["kid"])] = entry
            else:
                keyless.append(entry)
        self._keys, self._keyless, self._keys_at = keys, keyless, time.monotonic()

    async def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The IdP's key `kid` as a verifier for `alg` (the key's type must fit the algorithm,
        and a key that names its algorithm must name this one)."""
        async with self._lock:
            if not self._keys_at or time.monotonic() - self._keys_at > JWKS_TTL_S:
                await self._load_keys()
            found = self._find(kid, alg)
            if found is None and time.monotonic() - self._last_refetch >= JWKS_REFETCH_INTERVAL_S:
                # Not in our copy: the IdP rotated its keys. Once, then rate-limited.
                self._last_refetch = time.monotonic()
                await self._load_keys()
                found = self._find(kid, alg)
        if found is None:
            raise OidcError("unknown_key", "The id_token is signed with a key the identity provider does not publish.")
        if not _fits(found, alg):
            raise OidcError("algorithm", f"The id_token says {alg} but its key {kid or ''} is for another algorithm.")
        try:
            return jwt.PyJWK(found, algorithm=alg)
        except jwt.PyJWTError:
            raise OidcError("unknown_key", "The identity provider publishes that key in a form we cannot "
                                           "read.") from None

    def _find(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        if kid:
            return self._keys.get(kid)
        fitting = [k for k in self._keyless if _fits(k, alg)]
        return fitting[0] if len(fitting) == 1 else None

    def authorization_url(self, endpoint: str, *, redirect_uri: str, state: str, nonce: str,
                          challenge: str) -> str:
        params = {"response_type": "code", "client_id": self.config.client_id, "redirect_uri": redirect_uri,
                  "scope": self.config.scopes, "state": state, "nonce": nonce,
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"

    async def exchange_code(self, code: str, attempt: LoginAttempt) -> str:
        """The authorisation code for tokens; returns the raw id_token."""
        document = await self.discovery()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": attempt.redirect_uri,
                "client_id": self.config.client_id, "code_verifier": attempt.verifier}
        auth: httpx.Auth | None = None
        if self.config.client_secret:
            methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            if "client_secret_basic" in methods:
                auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
            else:
                form["client_secret"] = self.config.client_secret
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                answer = await client.post(str(document["token_endpoint"]), data=form,
                                           auth=auth or httpx.USE_CLIENT_DEFAULT,
                                           headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcError("idp_unreachable", f"The identity provider is unreachable ({type(exc).__name__}).",
                            502) from None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200:
            said = body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
            raise OidcError("token_exchange", f"The identity provider refused the code ({answer.status_code}"
                                              f"{': ' + str(said) if said else ''}).")
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise OidcError("token_exchange", "The identity provider's answer has no id_token.")
        return id_token

    async def validate_id_token(self, raw: str, nonce: str, *, now: float | None = None) -> dict[str, Any]:
        """The id_token's claims once its signature, issuer, audience, times and nonce hold."""
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            raise OidcError("malformed", "The id_token is not a signed JWT.") from None
        alg = str(header.get("alg", ""))
        allowed = await self.allowed_algorithms()
        if alg not in allowed:
            raise OidcError("algorithm", f"The id_token's algorithm {alg or 'none'!r} is not accepted "
                                         f"(accepted: {', '.join(allowed)}).")
        kid = header.get("kid")
        key = await self.signing_key(str(kid) if kid else None, alg)
        claims = self._decode(raw, key, alg, now)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.config.client_id:
            raise OidcError("audience", "The id_token was issued to another client (azp).")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise OidcError("nonce", "The id_token's nonce does not match this sign-in.")
        return claims

    def _decode(self, raw: str, key: jwt.PyJWK, alg: str, now: float | None) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["iss", "aud", "exp", "iat", "sub"]}
        try:
            if now is not None:   # tests: a fixed clock
                options["verify_exp"] = options["verify_iat"] = options["verify_nbf"] = False
            claims: dict[str, Any] = jwt.decode(raw, key=key.key, algorithms=[alg], audience=self.config.client_id,
                                                issuer=self.config.issuer, leeway=self.config.clock_skew_s,
                                                options=options)  # type: ignore[arg-type]
        except jwt.ExpiredSignatureError:
            raise OidcError("expired", "The id_token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise OidcError("not_yet_valid", "The id_token is not valid yet (iat or nbf in the future, "
                                             "beyond the allowed clock skew).") from None
        except jwt.InvalidAudienceError:
            raise OidcError("audience", "The id_token was issued to another client (aud).") from None
        except jwt.InvalidIssuerError:
            raise OidcError("issuer", "The id_token comes from another issuer.") from None
        except jwt.InvalidSignatureError:
            raise OidcError("signature", "The id_token's signature does not verify.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise OidcError("malformed", f"The id_token lacks the {exc.claim!r} claim.") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise OidcError("malformed", f"The id_token is not acceptable ({type(exc).__name__}).") from None
        if now is not None:
            self._check_times(claims, now)
        return claims

    def _check_times(self, claims: dict[str, Any], now: float) -> None:
        skew = self.config.clock_skew_s
        if float(claims["exp"]) <= now - skew:
            raise OidcError("expired", "The id_token has expired.")
        if float(claims["iat"]) > now + skew or float(claims.get("nbf", 0)) > now + skew:
            raise OidcError("not_yet_valid", "The id_token is not valid yet (iat or nbf in the future, "
                                             "beyond the allowed clock skew).")


def _fits(jwk: dict[str, Any], alg: str) -> bool:
    declared = jwk.get("alg")
    if declared and declared != alg:
        return False
    if alg.startswith(("RS", "PS")):
        return bool(jwk.get("kty") == "RSA")
    return bool(jwk.get("kty") == "EC" and jwk.get("crv") == "P-256")


def provider_for(app_state: Any, settings: Settings) -> OidcProvider | None:
    """The app's provider, made at first use (None: single sign-on is not configured)."""
    existing = getattr(app_state, "oidc_provider", None)
    if isinstance(existing, OidcProvider):
        return existing
    config = OidcConfig.from_settings(settings)
    if config is None:
        return None
    provider = OidcProvider(config)
    app_state.oidc_provider = provider
    return provider
