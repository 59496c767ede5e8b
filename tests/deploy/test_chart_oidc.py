"""charts/omniroute: single sign-on values (admin.oidc, secrets.oidcClientSecret) reach the admin
Deployment as the OMNIROUTE_OIDC_* variables, the client secret only through the Secret, the
admin may reach the identity provider through its NetworkPolicy, and the schema refuses what the
admin would refuse at start."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from .chart import EXTERNAL, deep_merge, render, validate
from .test_chart import by_name, env_of, of_kind

helm = pytest.importorskip("helm_python")   # as test_chart.py: the chart tests' own requirement

Obj = dict[str, Any]
OIDC = {"admin": {"oidc": {"issuer": "https://login.example.com:8443/realms/org", "clientId": "omniroute",
                           "displayName": "Okta", "roleMap": {"platform": "admin", "audit": "viewer"},
                           "teamMap": {"ml-leads": ["ml", "research"]}, "clockSkewSeconds": 30}},
        "secrets": {"oidcClientSecret": "cs-123"}}


def _admin_env(objs: list[Obj]) -> dict[str, Obj]:
    admin = by_name(objs, "Deployment")["omniroute-admin"]
    return env_of(admin["spec"]["template"]["spec"]["containers"][0])


def _admin_egress(objs: list[Obj]) -> list[Obj]:
    policy = by_name(objs, "NetworkPolicy")["omniroute-admin"]
    rules: list[Obj] = policy["spec"]["egress"]
    return rules


def test_oidc_values_reach_the_admin_and_the_secret_stays_in_the_secret() -> None:
    objs = render(deep_merge(EXTERNAL, OIDC))
    assert validate(objs) == []
    env = _admin_env(objs)
    values = {name: env[name].get("value") for name in env if name.startswith("OMNIROUTE_OIDC_")}
    assert values == {
        "OMNIROUTE_OIDC_ISSUER": "https://login.example.com:8443/realms/org",
        "OMNIROUTE_OIDC_CLIENT_ID": "omniroute", "OMNIROUTE_OIDC_DISPLAY_NAME": "Okta",
        "OMNIROUTE_OIDC_SCOPES": "openid email profile groups", "OMNIROUTE_OIDC_GROUPS_CLAIM": "groups",
        "OMNIROUTE_OIDC_ROLE_MAP": json.dumps({"audit": "viewer", "platform": "admin"}, separators=(",", ":")),
        "OMNIROUTE_OIDC_TEAM_MAP": json.dumps({"ml-leads": ["ml", "research"]}, separators=(",", ":")),
        "OMNIROUTE_OIDC_REDIRECT_URL": "", "OMNIROUTE_OIDC_CLOCK_SKEW_S": "30",
        "OMNIROUTE_OIDC_CLIENT_SECRET": None}
    assert env["OMNIROUTE_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "omniroute", "key": "OMNIROUTE_OIDC_CLIENT_SECRET", "optional": True}
    secret = by_name(objs, "Secret")["omniroute"]
    assert base64.b64decode(secret["data"]["OMNIROUTE_OIDC_CLIENT_SECRET"]).decode() == "cs-123"
    # Only the admin talks to the identity provider.
    for deployment in of_kind(objs, "Deployment"):
        if deployment["metadata"]["name"] != "omniroute-admin":
            assert not {n for n in env_of(deployment["spec"]["template"]["spec"]["containers"][0])
                        if n.startswith("OMNIROUTE_OIDC_")}, deployment["metadata"]["name"]
    idp_rules = [r for r in _admin_egress(objs) if r.get("ports") == [{"port": 8443, "protocol": "TCP"}]]
    assert idp_rules == [{"ports": [{"port": 8443, "protocol": "TCP"}],
                          "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}]


def test_without_oidc_the_admin_has_sso_off_and_no_internet_egress() -> None:
    objs = render(EXTERNAL)
    env = _admin_env(objs)
    assert env["OMNIROUTE_OIDC_ISSUER"]["value"] == "" and env["OMNIROUTE_OIDC_CLIENT_ID"]["value"] == ""
    assert "OMNIROUTE_OIDC_CLIENT_SECRET" not in by_name(objs, "Secret")["omniroute"]["data"]
    assert not [r for r in _admin_egress(objs)
                if any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for peer in r.get("to", []))]


def test_an_https_issuer_without_port_opens_443() -> None:
    objs = render(deep_merge(EXTERNAL, {"admin": {"oidc": {"issuer": "https://idp.example.com",
                                                           "clientId": "c"}}}))
    assert [r for r in _admin_egress(objs) if r.get("ports") == [{"port": 443, "protocol": "TCP"}]]


def test_existing_secret_may_hold_the_client_secret() -> None:
    objs = render(deep_merge(deep_merge(EXTERNAL, OIDC), {"secrets": {"existingSecret": "creds",
                                                                      "oidcClientSecret": ""}}))
    assert _admin_env(objs)["OMNIROUTE_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "creds", "key": "OMNIROUTE_OIDC_CLIENT_SECRET", "optional": True}


@pytest.mark.parametrize("oidc", [
    {"roleMap": {"platform": "superuser"}},
    {"teamMap": {"ml": "ml"}},
    {"scopes": "email profile"},
    {"issuer": "login.example.com"},
    {"clockSkewSeconds": -1},
    {"unknown": True},
])
def test_schema_refuses_bad_oidc_values(oidc: Obj) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(deep_merge(EXTERNAL, {"admin": {"oidc": oidc}}))
