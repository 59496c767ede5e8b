"""The single sign-on checks of features/oidc.py on their own: the settings, groups → role and
teams, PKCE, `next`, and the id_token validator against the mock IdP's real keys (clock skew at
its edges with a fixed clock, the algorithm allow list, keys of the wrong type, discovery)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from omniroute.settings import Settings
from omniroute_admin.features import oidc
from tests.mocks.oidc_idp import MockIdp

NOW = 1_900_000_000.0
SKEW = 60


@pytest.fixture(scope="module")
def idp() -> Iterator[MockIdp]:
    with MockIdp(client_id="omniroute") as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_idp(idp: MockIdp) -> None:
    idp.fault, idp.alg, idp.announced_issuer = None, "RS256", None


def config(idp: MockIdp, **changes: Any) -> oidc.OidcConfig:
    base = oidc.OidcConfig(issuer=idp.issuer, client_id="omniroute", client_secret="", display_name="Mock",
                           scopes="openid", groups_claim="groups", role_map={"admins": "admin"},
                           team_map={}, redirect_url="", clock_skew_s=SKEW)
    return dataclasses.replace(base, **changes)


def claims(idp: MockIdp, **changes: Any) -> dict[str, Any]:
    base = {"iss": idp.issuer, "sub": "s-1", "aud": "omniroute", "iat": int(NOW), "exp": int(NOW) + 300,
            "nonce": "n-1", "email": "a@example.com"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def validate(idp: MockIdp, token: str, **config_changes: Any) -> dict[str, Any]:
    return await oidc.OidcProvider(config(idp, **config_changes)).validate_id_token(token, "n-1", now=NOW)


async def refused(idp: MockIdp, token: str, **config_changes: Any) -> tuple[str, str]:
    with pytest.raises(oidc.OidcError) as caught:
        await validate(idp, token, **config_changes)
    return caught.value.reason, caught.value.message


# --- settings ----------------------------------------------------------------------------------------

def test_settings_read_the_oidc_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"OMNIROUTE_OIDC_ISSUER": " https://login.example.com/realms/org ",
                        "OMNIROUTE_OIDC_CLIENT_ID": "omniroute", "OMNIROUTE_OIDC_CLIENT_SECRET": "s3cret",
                        "OMNIROUTE_OIDC_DISPLAY_NAME": "Okta", "OMNIROUTE_OIDC_SCOPES": "email groups",
                        "OMNIROUTE_OIDC_GROUPS_CLAIM": "roles",
                        "OMNIROUTE_OIDC_ROLE_MAP": '{"ops": "admin", "audit": "viewer"}',
                        "OMNIROUTE_OIDC_TEAM_MAP": '{"ml": ["ml", "research"], "web": "web"}',
                        "OMNIROUTE_OIDC_REDIRECT_URL": "https://ai.example.com/api/auth/oidc/callback",
                        "OMNIROUTE_OIDC_CLOCK_SKEW_S": "30"}.items():
        monkeypatch.setenv(name, value)
    made = oidc.OidcConfig.from_settings(Settings())
    assert made == oidc.OidcConfig(
        issuer="https://login.example.com/realms/org", client_id="omniroute", client_secret="s3cret",
        display_name="Okta", scopes="openid email groups", groups_claim="roles",
        role_map={"ops": "admin", "audit": "viewer"}, team_map={"ml": ("ml", "research"), "web": ("web",)},
        redirect_url="https://ai.example.com/api/auth/oidc/callback", clock_skew_s=30)


def test_defaults_and_off_without_issuer_or_client(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "DISPLAY_NAME", "SCOPES", "GROUPS_CLAIM", "ROLE_MAP",
                 "TEAM_MAP", "REDIRECT_URL", "CLOCK_SKEW_S"):
        monkeypatch.delenv(f"OMNIROUTE_OIDC_{name}", raising=False)
    settings = Settings()
    assert (settings.oidc_scopes, settings.oidc_groups_claim, settings.oidc_clock_skew_s,
            settings.oidc_display_name) == ("openid email profile groups", "groups", 60, "single sign-on")
    assert oidc.OidcConfig.from_settings(settings) is None
    assert oidc.OidcConfig.from_settings(dataclasses.replace(settings, oidc_issuer="https://idp")) is None


@pytest.mark.parametrize(("role_map", "team_map", "message"), [
    ('{"ops": "superuser"}', "{}", "OMNIROUTE_OIDC_ROLE_MAP: 'ops' maps to 'superuser', not one of "
                                   "('owner', 'admin', 'team_admin', 'viewer')"),
    ("[1]", "{}", "OMNIROUTE_OIDC_ROLE_MAP must be a JSON object (group → …)"),
    ("{", "{}", "OMNIROUTE_OIDC_ROLE_MAP is not JSON"),
    ("{}", '{"ml": [1]}', "OMNIROUTE_OIDC_TEAM_MAP: 'ml' must map to a list of team ids"),
])
def test_malformed_maps_are_refused(role_map: str, team_map: str, message: str) -> None:
    settings = dataclasses.replace(Settings(), oidc_issuer="https://idp", oidc_client_id="c",
                                   oidc_role_map=role_map, oidc_team_map=team_map)
    with pytest.raises(ValueError) as caught:
        oidc.OidcConfig.from_settings(settings)
    assert str(caught.value).startswith(message)


# --- groups, PKCE, next ----------------------------------------------------------------------------

@pytest.mark.parametrize(("groups", "role", "teams"), [
    (["viewers"], "viewer", ()),
    (["viewers", "owners", "admins"], "owner", ()),
    (["ml-admins"], "team_admin", ("ml", "research")),
    (["ml-admins", "web-admins"], "team_admin", ("ml", "research", "web")),
    (["ml-admins", "admins"], "admin", ()),          # an admin sees every team: no team list
    (["viewers", "web-admins"], "team_admin", ("web",)),
    (["marketing"], None, ()),
    ([], None, ()),
])
def test_groups_map_to_the_highest_role_and_a_team_admins_teams(
        idp: MockIdp, groups: list[str], role: str | None, teams: tuple[str, ...]) -> None:
    made = config(idp, role_map={"viewers": "viewer", "admins": "admin", "owners": "owner"},
                  team_map={"ml-admins": ("ml", "research"), "web-admins": ("web",)})
    assert oidc.map_groups(made, groups) == (role, teams)


def test_groups_claim_as_list_or_string() -> None:
    assert oidc.groups_of({"g": ["a", "b"]}, "g") == ["a", "b"]
    assert oidc.groups_of({"g": "a"}, "g") == ["a"]
    assert oidc.groups_of({"g": {"a": 1}}, "g") == [] and oidc.groups_of({}, "g") == []


def test_pkce_pair_is_s256() -> None:
    verifier, challenge = oidc.pkce_pair()
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected and oidc.pkce_pair()[0] != verifier


@pytest.mark.parametrize(("given", "kept"), [
    ("/dashboard/keys?team=ml", "/dashboard/keys?team=ml"), ("/api/people", "/api/people"),
    (None, "/dashboard"), ("", "/dashboard"), ("https://evil.example", "/dashboard"),
    ("//evil.example", "/dashboard"), ("/\\evil.example", "/dashboard"), ("/ok\\x", "/dashboard"),
    ("/x\r\nSet-Cookie: a=b", "/dashboard"), ("dashboard", "/dashboard"),
])
def test_next_stays_on_this_site(given: str | None, kept: str) -> None:
    assert oidc.safe_next(given) == kept


# --- the id_token ------------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_good_token_gives_its_claims(idp: MockIdp, alg: str) -> None:
    token = idp.sign(claims(idp), alg)
    got = await validate(idp, token)
    assert got["sub"] == "s-1" and got["email"] == "a@example.com"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"exp": int(NOW) - SKEW + 1}, None),              # expired, but within the skew
    ({"exp": int(NOW) - SKEW - 1}, "expired"),
    ({"iat": int(NOW) + SKEW - 1}, None),              # issued "in the future", within the skew
    ({"iat": int(NOW) + SKEW + 1}, "not_yet_valid"),
    ({"nbf": int(NOW) + SKEW + 1}, "not_yet_valid"),
    ({"nbf": int(NOW) + SKEW - 1}, None),
])
async def test_clock_skew_at_its_edges(idp: MockIdp, changes: dict[str, Any], reason: str | None) -> None:
    token = idp.sign(claims(idp, **changes))
    if reason is None:
        assert (await validate(idp, token))["sub"] == "s-1"
    else:
        assert (await refused(idp, token))[0] == reason


async def test_the_real_clock_is_used_without_a_fixed_one(idp: MockIdp) -> None:
    now = int(time.time())
    provider = oidc.OidcProvider(config(idp))
    fresh = idp.sign(claims(idp, iat=now, exp=now + 60))
    assert (await provider.validate_id_token(fresh, "n-1"))["sub"] == "s-1"
    stale = idp.sign(claims(idp, iat=now - 600, exp=now - SKEW - 5))
    with pytest.raises(oidc.OidcError) as caught:
        await provider.validate_id_token(stale, "n-1")
    assert caught.value.reason == "expired"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"aud": "someone-else"}, "audience"),
    ({"aud": ["omniroute", "someone-else"]}, "audience"),                   # several audiences, no azp
    ({"aud": ["omniroute", "someone-else"], "azp": "someone-else"}, "audience"),
    ({"azp": "someone-else"}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"nonce": None}, "nonce"),
    ({"nonce": "n-2"}, "nonce"),
    ({"sub": None}, "malformed"),
    ({"exp": None}, "malformed"),
])
async def test_claims_that_do_not_hold_are_refused(idp: MockIdp, changes: dict[str, Any], reason: str) -> None:
    assert (await refused(idp, idp.sign(claims(idp, **changes))))[0] == reason


async def test_several_audiences_with_our_azp_are_accepted(idp: MockIdp) -> None:
    token = idp.sign(claims(idp, aud=["omniroute", "api"], azp="omniroute"))
    assert (await validate(idp, token))["azp"] == "omniroute"


@pytest.mark.parametrize(("fault", "reason"), [
    ("alg_none", "algorithm"), ("alg_hs256", "algorithm"), ("wrong_signature", "signature"),
    ("unknown_kid", "unknown_key"),
])
async def test_forged_tokens_are_refused(idp: MockIdp, fault: str, reason: str) -> None:
    idp.fault = fault
    token = idp.sign(claims(idp))
    assert (await refused(idp, token))[0] == reason


async def test_a_token_whose_header_names_another_algorithm_than_its_key(idp: MockIdp) -> None:
    """ES256 announced in the header with the RSA key's kid: the key's type does not fit."""
    token = jwt.encode(claims(idp), idp.keys["ES256"].private, algorithm="ES256",
                       headers={"kid": idp.keys["RS256"].kid})
    reason, message = await refused(idp, token)
    assert reason == "algorithm"
    assert message == f"The id_token says ES256 but its key {idp.keys['RS256'].kid} is for another algorithm."


async def test_garbage_is_malformed(idp: MockIdp) -> None:
    assert await refused(idp, "not-a-jwt") == ("malformed", "The id_token is not a signed JWT.")


async def test_discovery_naming_another_issuer_is_refused(idp: MockIdp) -> None:
    idp.announced_issuer = "https://evil.example/idp"
    with pytest.raises(oidc.OidcError) as caught:
        await oidc.OidcProvider(config(idp)).discovery()
    assert (caught.value.reason, caught.value.status) == ("discovery", 502)
    assert caught.value.message == "The identity provider's discovery document names another issuer."


async def test_an_unreachable_idp_is_a_502(idp: MockIdp) -> None:
    gone = config(idp, issuer="http://127.0.0.1:9/idp")
    with pytest.raises(oidc.OidcError) as caught:
        await oidc.OidcProvider(gone).discovery()
    assert (caught.value.reason, caught.value.status) == ("idp_unreachable", 502)
    assert caught.value.message == "The identity provider is unreachable (ConnectError)."


async def test_the_discovery_document_is_cached(idp: MockIdp) -> None:
    provider = oidc.OidcProvider(config(idp))
    first = await provider.discovery()
    assert first["issuer"] == idp.issuer
    idp.announced_issuer = "https://evil.example/idp"   # not fetched again within its TTL
    assert await provider.discovery() is first
