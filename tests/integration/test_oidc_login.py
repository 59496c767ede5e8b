"""Single sign-on with OpenID Connect against a mock identity provider that signs real JWTs
(tests/mocks/oidc_idp.py): the whole code flow as a browser follows it (httpx following
redirects: admin → IdP → admin), the person it creates, the session's role on the management
API, RS256 and ES256, key rotation at the IdP, and every refusal (bad tokens, replayed state,
PKCE, a disabled person, unmapped groups): no session, and an audit row saying why."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from omniroute.store import people_repo
from tests.integration.admin_app import Admin, running_admin
from tests.mocks.oidc_idp import MockIdp

CLIENT_ID = "omniroute"
ROLE_MAP = {"gateway-owners": "owner", "platform-admins": "admin", "auditors": "viewer"}
TEAM_MAP = {"team-default-admins": ["default"], "team-ghost-admins": ["no-such-team"]}


@pytest.fixture(scope="module")
def idp() -> Iterator[MockIdp]:
    with MockIdp(client_id=CLIENT_ID, client_secret="idp-secret-1") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_idp(idp: MockIdp) -> None:
    """Each test starts from a well-behaved IdP and the default user."""
    idp.fault, idp.alg, idp.deny = None, "RS256", False
    idp.user.sub, idp.user.email, idp.user.groups = "user-1", "ada@example.com", ["platform-admins"]
    idp.user.email_verified = True


def _oidc_settings(idp: MockIdp) -> dict[str, Any]:
    return {"oidc_issuer": idp.issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": "idp-secret-1",
            "oidc_display_name": "MockIdP", "oidc_role_map": orjson.dumps(ROLE_MAP).decode(),
            "oidc_team_map": orjson.dumps(TEAM_MAP).decode()}


@pytest.fixture(scope="module")
async def admin(idp: MockIdp, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path_factory.mktemp("oidc"), **_oidc_settings(idp)) as running:
        yield running


def browser(admin: Admin) -> httpx.AsyncClient:
    """A cookie-keeping client that reaches the admin in-process and the IdP over the network,
    following redirects between them as a browser would."""
    transport = httpx.ASGITransport(app=admin.app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(base_url="http://admin.test", mounts={"http://admin.test": transport},
                             follow_redirects=True, timeout=20)


async def sign_in(client: httpx.AsyncClient, next_path: str = "/dashboard", **headers: str) -> httpx.Response:
    return await client.get("/api/auth/oidc/login", params={"next": next_path}, headers=headers)


async def last_audit(admin: Admin, action: str) -> dict[str, Any]:
    answer = await admin.client.get("/api/audit", params={"action": action, "limit": 1})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    assert entries, f"no {action} audit row"
    return entries[0]


async def person(admin: Admin, email: str) -> people_repo.Person | None:
    async with admin.app.state.admin.pool.connection() as conn:
        return await people_repo.by_email(conn, email)


async def test_init_and_login_page_offer_sign_in_with_the_provider(admin: Admin) -> None:
    async with admin.anonymous() as client:
        init = (await client.get("/api/init")).json()
        assert init["sso"] == {"enabled": True, "displayName": "MockIdP", "loginUrl": "/api/auth/oidc/login"}
        page = await client.get("/dashboard/login", params={"next": "/dashboard/keys"})
        assert page.status_code == 200
        assert ('<a class="button sso-button" id="sso-login" href="/api/auth/oidc/login?next=/dashboard/keys">'
                'Sign in with MockIdP</a>') in page.text


async def test_authorization_request_uses_pkce_s256_state_and_nonce(admin: Admin, idp: MockIdp) -> None:
    async with browser(admin) as client:
        answer = await client.get("/api/auth/oidc/login", follow_redirects=False)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{idp.issuer}/authorize"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://admin.test/api/auth/oidc/callback"
    assert query["scope"] == "openid email profile groups"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and query["state"] != query["nonce"]
    binding = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("oidc_login="))
    assert "HttpOnly" in binding and "SameSite=lax" in binding and "Path=/api/auth/oidc" in binding
    # The attempt (nonce, PKCE verifier, redirect_uri, next) waits in Redis for 10 minutes, under
    # the state's hash: nothing of it travels through the browser.
    redis = admin.app.state.admin.redis
    state_hash = hashlib.sha256(query["state"].encode()).hexdigest()
    key = f"{admin.settings.env}:oidc-login:{state_hash}"
    assert 590 <= await redis.ttl(key) <= 600
    stored = orjson.loads(await redis.get(key))
    assert set(stored) == {"nonce", "verifier", "redirect_uri", "next", "binding"}
    assert stored["nonce"] == query["nonce"] and stored["next"] == "/dashboard"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(stored["verifier"].encode()).digest()).rstrip(b"=")
    assert challenge.decode() == query["code_challenge"]


@pytest.mark.parametrize(("groups", "role", "team_ids"), [
    (["platform-admins"], "admin", []),
    (["auditors"], "viewer", []),
    (["gateway-owners", "auditors"], "owner", []),
    (["auditors", "platform-admins", "marketing"], "admin", []),   # the highest-ranked mapped group
    (["team-default-admins", "marketing"], "team_admin", ["default"]),
])
async def test_code_flow_creates_the_person_with_the_mapped_role_and_the_session_works(
        admin: Admin, idp: MockIdp, groups: list[str], role: str, team_ids: list[str]) -> None:
    email = f"{role}-{len(groups)}@example.com"
    idp.user.sub, idp.user.email, idp.user.groups = f"sub-{email}", email, groups
    async with browser(admin) as client:
        answer = await sign_in(client, "/dashboard/keys")
        assert answer.status_code == 200, answer.text
        assert answer.url.path == "/api/auth/oidc/callback"
        assert answer.headers["x-omniroute-next"] == "/dashboard/keys"
        assert '<meta http-equiv="refresh" content="0;url=/dashboard/keys">' in answer.text
        assert client.cookies.get("auth_token") and client.cookies.get("csrf_token")
        stored = await person(admin, email)
        assert stored is not None
        assert (stored.role, list(stored.team_ids), stored.source) == (role, team_ids, "oidc")
        assert stored.oidc_subject == f"{idp.issuer}|sub-{email}" and stored.last_login_at is not None
        assert stored.name == "Ada Lovelace" and stored.enabled

        client.headers["x-csrf-token"] = client.cookies["csrf_token"]
        settings_read = await client.get("/api/settings")
        settings_write = await client.put("/api/settings", json={"instance_name": f"by-{role}"})
        expected_read = 403 if role == "team_admin" else 200
        expected_write = 200 if role in ("owner", "admin") else 403
        assert (settings_read.status_code, settings_write.status_code) == (expected_read, expected_write), \
            (settings_read.text, settings_write.text)
        if role != "team_admin":
            dashboard = await client.get("/dashboard", follow_redirects=False)
            assert dashboard.status_code == 200   # the dashboard takes the same session
    login = await last_audit(admin, "auth.sso_login")
    assert login["actor"] == f"person:{email}" and login["target"] == stored.id
    assert login["detail"]["groups"] == groups and login["detail"]["role"] == role
    assert login["detail"]["team_ids"] == team_ids


async def test_es256_tokens_and_a_known_person_found_by_subject(admin: Admin, idp: MockIdp) -> None:
    idp.alg = "ES256"
    idp.user.sub, idp.user.email = "sub-es", "es@example.com"
    async with browser(admin) as client:
        assert (await sign_in(client)).status_code == 200
    first = await person(admin, "es@example.com")
    # The IdP changes the address: the subject still names the same person, who keeps their id.
    idp.user.email, idp.user.groups = "es-renamed@example.com", ["auditors"]
    async with browser(admin) as client:
        assert (await sign_in(client)).status_code == 200
    again = await person(admin, "es@example.com")
    assert first is not None and again is not None and again.id == first.id and again.role == "viewer"
    assert await person(admin, "es-renamed@example.com") is None


async def test_an_existing_person_is_linked_by_email(admin: Admin, idp: MockIdp) -> None:
    async with admin.app.state.admin.pool.connection() as conn:
        before = await people_repo.upsert(conn, email="Grace@Example.com", name="Grace", role="viewer",
                                          team_ids=[], source="api")
    idp.user.sub, idp.user.email = "sub-grace", "grace@example.com"
    async with browser(admin) as client:
        assert (await sign_in(client)).status_code == 200
    after = await person(admin, "grace@example.com")
    assert after is not None and after.id == before.id and after.role == "admin"
    assert after.oidc_subject == f"{idp.issuer}|sub-grace"


FAULTS = [
    ("expired", "expired", "The id_token has expired."),
    ("wrong_signature", "signature", "The id_token's signature does not verify."),
    ("unknown_kid", "unknown_key", "The id_token is signed with a key the identity provider does not publish."),
    ("wrong_audience", "audience", "The id_token was issued to another client (aud)."),
    ("multi_aud_no_azp", "audience", "The id_token was issued to another client (azp)."),
    ("wrong_issuer", "issuer", "The id_token comes from another issuer."),
    ("no_nonce", "nonce", "The id_token's nonce does not match this sign-in."),
    ("wrong_nonce", "nonce", "The id_token's nonce does not match this sign-in."),
    ("future_iat", "not_yet_valid", "The id_token is not valid yet (iat or nbf in the future, beyond the "
                                    "allowed clock skew)."),
    ("alg_none", "algorithm", "The id_token's algorithm 'none' is not accepted (accepted: RS256, ES256)."),
    ("alg_hs256", "algorithm", "The id_token's algorithm 'HS256' is not accepted (accepted: RS256, ES256)."),
]


@pytest.mark.parametrize(("fault", "reason", "message"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_a_bad_id_token_is_refused_with_no_session_and_an_audit_row(
        admin: Admin, idp: MockIdp, fault: str, reason: str, message: str) -> None:
    idp.fault = fault
    idp.user.sub, idp.user.email = f"sub-{fault}", f"{fault}@example.com"
    async with browser(admin) as client:
        answer = await sign_in(client)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"error": {"message": message, "status": 401}}
        assert "auth_token" not in client.cookies
    assert await person(admin, f"{fault}@example.com") is None
    refused = await last_audit(admin, "auth.sso_failed")
    assert refused["detail"]["reason"] == reason and refused["detail"]["message"] == message
    assert refused["actor"] == "anonymous"


async def test_declining_at_the_idp_is_refused(admin: Admin, idp: MockIdp) -> None:
    idp.deny = True
    async with browser(admin) as client:
        answer = await sign_in(client)
        assert answer.status_code == 401
        assert answer.json()["error"]["message"] == "The identity provider said access_denied: The user declined."
        assert "auth_token" not in client.cookies
    assert (await last_audit(admin, "auth.sso_failed"))["detail"]["reason"] == "idp_error"


async def test_an_unreachable_idp_is_a_502_with_an_audit_row(idp: MockIdp, tmp_path: Path) -> None:
    settings = {**_oidc_settings(idp), "oidc_issuer": "http://127.0.0.1:9/idp"}
    async with running_admin(tmp_path, **settings) as admin, browser(admin) as client:
        answer = await sign_in(client)
        assert answer.status_code == 502
        assert answer.json()["error"]["message"] == "The identity provider is unreachable (ConnectError)."
        assert (await last_audit(admin, "auth.sso_failed"))["detail"]["reason"] == "idp_unreachable"


async def test_a_browser_sees_the_refusal_as_a_page(admin: Admin, idp: MockIdp) -> None:
    idp.fault = "expired"
    async with browser(admin) as client:
        answer = await sign_in(client, accept="text/html,application/xhtml+xml")
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("text/html")
    assert "The id_token has expired." in answer.text and "auth_token" not in client.cookies


async def _callback_url(client: httpx.AsyncClient) -> str:
    """Start a sign-in and let the IdP approve it; the callback URL it sends the browser to."""
    login = await client.get("/api/auth/oidc/login", follow_redirects=False)
    approved = await client.get(login.headers["location"], follow_redirects=False)
    assert approved.status_code == 302, approved.text
    return str(approved.headers["location"])


async def test_state_is_single_use_and_bound_to_the_browser(admin: Admin, idp: MockIdp) -> None:
    async with browser(admin) as client:
        callback = await _callback_url(client)
        assert (await client.get(callback)).status_code == 200
        replayed = await client.get(callback)
        assert replayed.status_code == 400
        assert replayed.json()["error"]["message"] == ("This sign-in link is unknown, already used or expired; "
                                                       "sign in again.")
    async with browser(admin) as victim, browser(admin) as attacker:
        planted = await _callback_url(attacker)   # the attacker's own approved sign-in...
        answer = await victim.get(planted)         # ...opened in the victim's browser
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == "This sign-in was started in another browser; sign in again."
        assert "auth_token" not in victim.cookies
    refused = await last_audit(admin, "auth.sso_failed")
    assert refused["detail"]["reason"] == "state"


async def test_pkce_stops_an_injected_code(admin: Admin, idp: MockIdp) -> None:
    """A code stolen from someone else's sign-in, pasted into a callback with the victim's own
    state: the victim's PKCE verifier does not match the code's challenge, so the IdP refuses."""
    async with browser(admin) as victim, browser(admin) as attacker:
        stolen_code = parse_qs(urlsplit(await _callback_url(attacker)).query)["code"][0]
        own = urlsplit(await _callback_url(victim))
        victim_state = parse_qs(own.query)["state"][0]
        answer = await victim.get("/api/auth/oidc/callback", params={"code": stolen_code, "state": victim_state})
        assert answer.status_code == 401
        assert answer.json()["error"]["message"] == ("The identity provider refused the code (400: PKCE verifier "
                                                     "does not match the challenge).")
        assert "auth_token" not in victim.cookies
    assert idp.token_errors[-1] == "PKCE verifier does not match the challenge"
    assert (await last_audit(admin, "auth.sso_failed"))["detail"]["reason"] == "token_exchange"


async def test_a_code_exchange_is_authenticated_with_the_client_secret(admin: Admin, idp: MockIdp) -> None:
    idp.client_secret = "rotated-at-the-idp"
    try:
        async with browser(admin) as client:
            answer = await sign_in(client)
    finally:
        idp.client_secret = "idp-secret-1"
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == ("The identity provider refused the code (401: wrong client "
                                                 "secret).")


@pytest.mark.parametrize(("groups", "message"), [
    (["marketing"], "You are not allowed to manage this gateway: none of your groups is mapped to a role."),
    ([], "You are not allowed to manage this gateway: none of your groups is mapped to a role."),
    (["team-ghost-admins"], "You are not allowed to manage this gateway: your groups name no existing team."),
])
async def test_unmapped_groups_are_not_allowed(admin: Admin, idp: MockIdp, groups: list[str], message: str) -> None:
    idp.user.sub, idp.user.email, idp.user.groups = "sub-outsider", "outsider@example.com", groups
    async with browser(admin) as client:
        answer = await sign_in(client)
        assert answer.status_code == 403
        assert answer.json() == {"error": {"message": message, "status": 403}}
        assert "auth_token" not in client.cookies
    assert await person(admin, "outsider@example.com") is None
    refused = await last_audit(admin, "auth.sso_failed")
    assert refused["detail"]["reason"] == "not_allowed" and refused["detail"]["groups"] == groups


async def test_a_disabled_person_is_refused(admin: Admin, idp: MockIdp) -> None:
    async with admin.app.state.admin.pool.connection() as conn:
        await people_repo.upsert(conn, email="ex@example.com", name="Ex", role="admin", team_ids=[],
                                 source="api", enabled=False)
    idp.user.sub, idp.user.email = "sub-ex", "ex@example.com"
    async with browser(admin) as client:
        answer = await sign_in(client)
        assert answer.status_code == 403
        assert answer.json()["error"]["message"] == "Your access to this gateway is disabled."
        assert "auth_token" not in client.cookies
    still = await person(admin, "ex@example.com")
    assert still is not None and not still.enabled and still.oidc_subject is None
    assert (await last_audit(admin, "auth.sso_failed"))["detail"]["reason"] == "disabled"


async def test_an_unverified_email_is_refused(admin: Admin, idp: MockIdp) -> None:
    idp.user.sub, idp.user.email, idp.user.email_verified = "sub-unverified", "unverified@example.com", False
    async with browser(admin) as client:
        answer = await sign_in(client)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "The identity provider has not verified this e-mail address."


@pytest.mark.parametrize("target", ["https://evil.example/x", "//evil.example/x", "/\\evil.example", "dashboard"])
async def test_next_is_a_path_of_this_site_only(admin: Admin, idp: MockIdp, target: str) -> None:
    async with browser(admin) as client:
        answer = await sign_in(client, target)
    assert answer.status_code == 200 and answer.headers["x-omniroute-next"] == "/dashboard"


async def test_the_password_login_stays_the_break_glass(admin: Admin) -> None:
    async with admin.anonymous() as client:
        answer = await client.post("/api/auth/login", json={"password": admin.settings.initial_password})
        assert answer.status_code == 200
        assert (await client.get("/api/settings")).status_code == 200


async def test_keys_rotated_at_the_idp_are_fetched_again_once(idp: MockIdp, tmp_path: Path) -> None:
    async with running_admin(tmp_path, **_oidc_settings(idp)) as admin:
        for alg in ("RS256", "ES256"):
            idp.alg = alg
            async with browser(admin) as client:
                assert (await sign_in(client)).status_code == 200
        fetches = idp.jwks_fetches
        old_kid = idp.keys["RS256"].kid
        new_kid = idp.rotate("RS256")
        assert new_kid != old_kid
        idp.alg = "RS256"
        async with browser(admin) as client:
            assert (await sign_in(client)).status_code == 200   # unknown kid → JWKS again → verified
        assert idp.jwks_fetches == fetches + 1
        async with browser(admin) as client:
            assert (await sign_in(client)).status_code == 200   # the new copy serves
        assert idp.jwks_fetches == fetches + 1
        # Tokens with made-up kids: one more fetch was just spent, so none now (rate-limited).
        idp.fault = "unknown_kid"
        for _ in range(3):
            async with browser(admin) as client:
                assert (await sign_in(client)).status_code == 401
        assert idp.jwks_fetches == fetches + 1


async def test_without_oidc_settings_there_is_no_single_sign_on(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin, admin.anonymous() as client:
        assert (await client.get("/api/init")).json()["sso"] == {"enabled": False}
        assert "Sign in with" not in (await client.get("/dashboard/login")).text
        answer = await client.get("/api/auth/oidc/login")
        assert answer.status_code == 404
        assert answer.json() == {"error": {"message": "Single sign-on is not configured.", "status": 404}}

