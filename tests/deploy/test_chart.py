"""charts/omniroute: render offline with several value sets, validate every object against the
Kubernetes schemas (kubernetes-validate --strict), and assert the properties the chart promises."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import pytest
import yaml

from .chart import (
    CHART,
    CHECKED_VALUES,
    CRD_KINDS,
    EXAMPLES,
    EXTERNAL,
    KUBE_VERSION,
    NAMESPACE,
    ROOT,
    chart_check,
    deep_merge,
    load_values,
    render,
    validate,
)

helm = pytest.importorskip("helm_python")

Obj = dict[str, Any]

SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external": EXTERNAL,
    "families": deep_merge(
        EXTERNAL,
        {
            "executor": {
                "families": {
                    "openai-responses": None,
                    "assemblyai": None,
                    "deepgram": {"replicaCount": 1, "autoscaling": {"enabled": False}},
                    # A family's own session-stream port, like its own `port`.
                    "anthropic": {"sessionPort": 50072},
                }
            }
        },
    ),
    "ingress": deep_merge(
        EXTERNAL,
        {
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "hosts": ["ai.example.com"],
                "tls": [{"secretName": "ai-tls", "hosts": ["ai.example.com"]}],
            }
        },
    ),
    "existing-secret": deep_merge(
        EXTERNAL, {"secrets": {"existingSecret": "omniroute-creds", "databaseUrl": ""}}
    ),
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}}},
        "edge": {
            "autoscaling": {
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "omniroute_inflight_streams"},
                            "target": {"type": "AverageValue", "averageValue": "50"},
                        },
                    }
                ]
            }
        },
        "otel": {"enabled": False},
    },
    "no-networkpolicy": deep_merge(EXTERNAL, {"networkPolicy": {"enabled": False}}),
    "production-example": load_values(EXAMPLES / "production.yaml"),
    "dev-example": load_values(EXAMPLES / "dev.yaml"),
}

CACHE: dict[str, list[Obj]] = {}


def objects(scenario: str) -> list[Obj]:
    if scenario not in CACHE:
        CACHE[scenario] = render(SCENARIOS[scenario])
    return CACHE[scenario]


def of_kind(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def by_name(objs: Iterable[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in of_kind(objs, kind)}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def component(obj: Obj) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


# ---- every value set renders and validates -----------------------------------------------


def test_make_chart_check() -> None:
    """What `make chart-check` runs (tests.deploy.chart.chart_check): render the default values
    and examples/production.yaml, validate every object strictly against the Kubernetes schemas
    offline, and lint."""
    assert set(CHECKED_VALUES) == {"defaults", "production example"}
    assert CHECKED_VALUES["production example"] == EXAMPLES / "production.yaml"
    problems = chart_check()
    assert not problems, "\n".join(problems)
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\nchart-check:"):].split("\n\n")[0]
    assert "-m tests.deploy.chart --check" in target, "the Makefile target must call chart_check()"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_renders_and_validates_strict(scenario: str) -> None:
    objs = objects(scenario)
    assert objs, "nothing rendered"
    errors = validate(objs)
    assert not errors, "\n".join(errors)
    # No two objects of one kind share a name; every name is a valid DNS label length.
    seen = set()
    for o in objs:
        ident = (o["kind"], o["metadata"]["name"])
        assert ident not in seen, ident
        seen.add(ident)
        assert len(o["metadata"]["name"]) <= 63
        if o["metadata"]["labels"].get("app.kubernetes.io/component") != "dashboards":
            assert o["metadata"]["namespace"] == NAMESPACE, ident  # `helm template | kubectl apply`


def test_validates_against_oldest_supported_kubernetes() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"].startswith(">=1.27")
    assert not validate(objects("production-example"), version="1.27.0")


def test_lint_has_no_findings_but_the_undownloaded_subcharts() -> None:
    for scenario in ("defaults", "external"):
        report = helm.lint(str(CHART), SCENARIOS[scenario], strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [
            m
            for m in report["messages"]
            if m["severity"] >= 2 and "missing these dependencies" not in m["error"]
        ]
        assert not problems, problems


def test_schema_rejects_bad_values() -> None:
    bad: dict[str, Any]
    for bad in (
        {"edge": {"replicaCount": "two"}},
        {"edgee": {}},
        {"executor": {"families": {"Open_AI": {}}}},
        {"externalRedis": {"url": "http://redis"}},
        {"ingress": {"edgePaths": ["v1"]}},
        {"edge": {"autoscaling": {"targetCPUUtilizationPercentage": 300}}},
        {"hopTransport": "udp"},
        {"router": {"sessionPort": 70000}},
        {"executor": {"families": {"openai": {"sessionPort": "50062"}}}},
    ):
        with pytest.raises(helm.HelmValuesError):
            render(bad)


def test_external_endpoints_are_required_without_subcharts() -> None:
    for missing in ("externalNats", "externalRedis"):
        values = deep_merge(EXTERNAL, {missing: {"url": ""}})
        with pytest.raises(helm.HelmRenderError):
            render(values)
    with pytest.raises(helm.HelmRenderError):
        render(deep_merge(EXTERNAL, {"secrets": {"databaseUrl": ""}}))


# ---- workloads ------------------------------------------------------------------------------

SERVICES = ["edge", "admin", "router", "accounting", "analytics"]
GRPC = {"router", "executor"}
STREAMING = {"edge", "router", "executor"}


@pytest.mark.parametrize("scenario", ["defaults", "families", "production-example"])
def test_pods_are_locked_down(scenario: str) -> None:
    objs = objects(scenario)
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind(objs, "Deployment")]
    pods += [(j["metadata"]["name"], j["spec"]["template"]["spec"]) for j in of_kind(objs, "Job")]
    assert len(pods) >= 7
    for name, spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["runAsNonRoot"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"], name
            # A read-only root needs a writable /tmp.
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), name


@pytest.mark.parametrize("scenario", ["defaults", "families"])
def test_probes_and_graceful_termination(scenario: str) -> None:
    with helm.Chart.load(str(CHART)) as chart:
        values = chart.merge_values(SCENARIOS[scenario])
    for d in of_kind(objects(scenario), "Deployment"):
        comp = component(d)
        spec = d["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == 9464
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            p = c[probe]
            if comp in GRPC:
                assert p["grpc"]["port"] == ports["grpc"], (d["metadata"]["name"], probe)
            else:
                port = "http" if comp in ("edge", "admin") else "health"
                assert p["httpGet"]["port"] == port and port in ports
                assert p["httpGet"]["path"] == ("/readyz" if probe == "readinessProbe" else "/healthz")
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert sleep == values["preStopSleepSeconds"] > 0
        grace = spec["terminationGracePeriodSeconds"]
        drain = int(env_of(c)["OMNIROUTE_DRAIN_S"]["value"])
        assert sleep + drain < grace, d["metadata"]["name"]
        if comp in STREAMING:
            assert drain >= 300, "streams get five minutes to finish"


@pytest.mark.parametrize("scenario", ["defaults", "families", "monitoring"])
def test_each_deployment_has_service_account_service_pdb_and_spread(scenario: str) -> None:
    objs = objects(scenario)
    sas = by_name(objs, "ServiceAccount")
    services = of_kind(objs, "Service")
    pdbs = of_kind(objs, "PodDisruptionBudget")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objs, "HorizontalPodAutoscaler")}
    for d in of_kind(objs, "Deployment"):
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selects(d["spec"]["selector"]["matchLabels"], labels)
        assert spec["serviceAccountName"] == name and name in sas
        svc = [
            s
            for s in services
            if selects(s["spec"]["selector"], labels) and s["spec"].get("clusterIP") != "None"
        ]
        assert len(svc) == 1, name
        assert {"metrics"} < {p["name"] for p in svc[0]["spec"]["ports"]}
        assert any(selects(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs), name
        spread = spec["topologySpreadConstraints"]
        assert {t["topologyKey"] for t in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        assert all(selects(t["labelSelector"]["matchLabels"], labels) for t in spread)
        if component(d) in STREAMING and name != "omniroute-executor-deepgram":  # autoscaling off
            hpa = hpas[name]
            assert "replicas" not in d["spec"], "the HPA owns the replica count"
            metrics = hpa["spec"]["metrics"]
            assert metrics[0]["resource"]["name"] == "cpu"
            assert hpa["spec"]["minReplicas"] >= 2
    # No HPA or PDB points at nothing.
    deployments = by_name(objs, "Deployment")
    assert set(hpas) <= set(deployments)
    if scenario == "monitoring":
        edge_metrics = hpas["omniroute-edge"]["spec"]["metrics"]
        assert edge_metrics[1]["pods"]["metric"]["name"] == "omniroute_inflight_streams"


def _executor_families() -> set[str]:
    """Every family `python -m omniroute_executor --family <name>` accepts."""
    families = pytest.importorskip("omniroute_executor.families")
    from omniroute_executor.__main__ import MCP_FAMILY  # the MCP gateway's workload (issue 21)

    return set(families.FAMILIES) | set(families.OPERATION_ONLY) | {MCP_FAMILY}


def test_default_families_are_the_executors_families() -> None:
    """The chart's default executor.families follow the code: a family added to
    omniroute_executor.families gets its Deployment (add it to values.yaml), and a name the
    executor does not know would crash-loop (`unknown family`)."""
    from omniroute_executor.__main__ import _families

    known = _executor_families()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["executor"]["families"]) == known
    assert values["executor"]["defaultFamily"] in known
    for scenario in SCENARIOS:
        with helm.Chart.load(str(CHART)) as chart:
            merged = chart.merge_values(SCENARIOS[scenario])
        for family, cfg in merged["executor"]["families"].items():
            if cfg is not None and cfg.get("enabled", True):
                assert family in known, f"{scenario}: no executor family {family!r}"
                _families(family)  # what the container's `--family <family>` does at start


def test_one_executor_deployment_per_family() -> None:
    known = _executor_families()
    for scenario, families in (
        ("defaults", known),
        ("families", known - {"openai-responses", "assemblyai"}),
        ("production-example", known - {"ollama"}),
    ):
        objs = objects(scenario)
        executors = [d for d in of_kind(objs, "Deployment") if component(d) == "executor"]
        got = {
            d["spec"]["template"]["metadata"]["labels"]["omniroute.io/executor-family"]: d for d in executors
        }
        assert set(got) == families
        for fam, d in got.items():
            (c,) = d["spec"]["template"]["spec"]["containers"]
            assert c["args"] == ["--family", fam]
            assert c["image"].endswith(("/executor:0.1.0", "/executor:dev")) or "/executor:" in c["image"]
            assert env_of(c)["EXECUTOR_PORT"]["value"] == "50061"
            assert "OMNIROUTE_MASTER_KEY" not in env_of(c) and "DATABASE_URL" not in env_of(c)
        # Router and admin (provider tests, model lists, health) are told where each family
        # lives, and where any other family goes (EXECUTOR_ADDR); each address is a real Service.
        services = by_name(objs, "Service")
        for caller in ("omniroute-router", "omniroute-admin"):
            e = env_of(by_name(objs, "Deployment")[caller]["spec"]["template"]["spec"]["containers"][0])
            pairs = dict(a.split("=", 1) for a in e["EXECUTOR_ADDRS"]["value"].split(","))
            assert set(pairs) == families, caller
            assert e["EXECUTOR_ADDR"]["value"] == pairs["openai"], "executor.defaultFamily"
            for fam, addr in pairs.items():
                host, port = addr.rsplit(":", 1)
                svc = services[host]
                assert svc["spec"]["selector"]["omniroute.io/executor-family"] == fam
                assert svc["spec"]["clusterIP"] == "None", "gRPC round_robin needs every pod address"
                assert int(port) in [p["port"] for p in svc["spec"]["ports"]]
        if scenario == "families":
            deepgram = got["deepgram"]
            assert deepgram["spec"]["replicas"] == 1
            assert "omniroute-executor-deepgram" not in {
                h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objs, "HorizontalPodAutoscaler")
            }


# Session streams on plain TCP: router and executors listen on a `sessions` port as well
# (OMNIROUTE_HOP_TCP_PORT); clients learn it from the gRPC port and dial the pod address.
SESSION_PORTS = {"router": 50052, "executor": 50062}


@pytest.mark.parametrize("scenario", ["defaults", "families", "production-example"])
def test_router_and_executors_serve_session_streams_on_their_sessions_port(scenario: str) -> None:
    objs = objects(scenario)
    services = of_kind(objs, "Service")
    for d in of_kind(objs, "Deployment"):
        name, comp = d["metadata"]["name"], component(d)
        (c,) = d["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = env_of(c)
        if comp not in SESSION_PORTS:
            assert "sessions" not in ports and "OMNIROUTE_HOP_TCP_PORT" not in env, name
            continue
        expected = 50072 if (scenario, name) == ("families", "omniroute-executor-anthropic") else (
            SESSION_PORTS[comp])
        assert ports["sessions"] == expected != ports["grpc"], name
        assert env["OMNIROUTE_HOP_TCP_PORT"]["value"] == str(expected), name
        # Both Services (the headless one is what clients resolve) carry the port.
        labels = d["spec"]["template"]["metadata"]["labels"]
        mine = [s for s in services if selects(s["spec"]["selector"], labels)]
        assert {s["spec"].get("clusterIP") == "None" for s in mine} == {True, False}, name
        for s in mine:
            (port,) = [p for p in s["spec"]["ports"] if p["name"] == "sessions"]
            assert port["port"] == expected and port["targetPort"] == "sessions", s["metadata"]["name"]


def test_hop_transport_reaches_edge_and_router() -> None:
    """hopTransport is OMNIROUTE_HOP_TRANSPORT of the two callers (edge → router, router →
    executor); the other services make no such hops."""
    for values, expected in (({}, "tcp"), ({"hopTransport": "stream"}, "stream"),
                             ({"hopTransport": "unary"}, "unary")):
        envs = _container_envs(render(deep_merge(EXTERNAL, values)))
        for name, env in envs.items():
            if name in ("omniroute-edge", "omniroute-router"):
                assert env["OMNIROUTE_HOP_TRANSPORT"]["value"] == expected, name
            else:
                assert "OMNIROUTE_HOP_TRANSPORT" not in env, name


def test_service_wiring_env() -> None:
    objs = objects("external")
    deps = by_name(objs, "Deployment")
    services = by_name(objs, "Service")
    secret = by_name(objs, "Secret")["omniroute"]

    def env(name: str) -> dict[str, Obj]:
        return env_of(deps[name]["spec"]["template"]["spec"]["containers"][0])

    edge = env("omniroute-edge")
    assert edge["OMNIROUTE_PORT"]["value"] == "20128"
    router_host, router_port = edge["ROUTER_ADDR"]["value"].rsplit(":", 1)
    assert router_host in services and router_port == "50051"
    assert edge["ADMIN_URL"]["value"] == "http://omniroute-admin:20129" and "omniroute-admin" in services
    assert edge["NATS_URL"]["value"] == "nats://nats.messaging:4222"
    admin = env("omniroute-admin")
    assert admin["OMNIROUTE_CONFIG"]["value"] == "/etc/omniroute/config.yaml"
    assert env("omniroute-router")["QDRANT_URL"]["value"] == "http://qdrant.vectors:6333"
    for name, d in deps.items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        e = env_of(c)
        assert e["OMNIROUTE_BIND"]["value"] == "0.0.0.0", "the services bind 127.0.0.1 by default"
        port_env = {
            "edge": "OMNIROUTE_PORT",
            "admin": "ADMIN_PORT",
            "router": "ROUTER_PORT",
            "executor": "EXECUTOR_PORT",
            "accounting": "ACCOUNTING_PORT",
            "analytics": "ANALYTICS_PORT",
        }
        main_port = next(p for p in c["ports"] if p["name"] != "metrics")["containerPort"]
        assert e[port_env[component(d)]]["value"] == str(main_port), name
        assert e["OTEL_SERVICE_NAME"]["value"].startswith("omniroute-")
        assert e["OTEL_EXPORTER_PROMETHEUS_PORT"]["value"] == "9464"
        for var in e.values():
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == "omniroute" and not ref.get("optional"):
                assert ref["key"] in secret["data"], (name, ref)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["DATABASE_URL"] == EXTERNAL["secrets"]["databaseUrl"]
    assert decoded["REDIS_URL"] == EXTERNAL["externalRedis"]["url"]
    assert len(decoded["OMNIROUTE_MASTER_KEY"]) >= 32
    assert len(decoded["INITIAL_PASSWORD"]) >= 16, "never the services' built-in default"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# ---- environment: the chart in step with what the services read ------------------------------

# Variables the services read that the chart leaves at the code's default on purpose. Each is
# described in docs/deploy.md; set one with `<service>.env` (or `extraEnv` for a valueFrom).
LEFT_TO_DEFAULTS = {
    "OMNIROUTE_MAX_BODY_BYTES": "edge: request body limit (32 MiB; match the ingress body size)",
    "OMNIROUTE_MAX_AUDIO_BYTES": "edge: audio upload limit (25 MiB)",
    "OMNIROUTE_EDGE_WORKERS": "edge: processes per pod (1; scale with replicas instead)",
    "OMNIROUTE_EDGE_SERVER": "edge: uvicorn; granian only for bench/edge_server.py's comparison (benchmarks only)",
    "OMNIROUTE_BODY_TIMEOUT_S": "edge: time to receive a request body (60 s)",
    "OMNIROUTE_PROGRESS_INTERVAL_S": "edge: SSE progress comments while waiting (1 s)",
    "OMNIROUTE_UPSTREAM_TIMEOUT_S": "executor/router: upstream timeout (600 s)",
    "OMNIROUTE_HOP_STREAMS": "edge/router: session streams per peer pod address (4)",
    "OMNIROUTE_HOP_DNS_REFRESH_S": "edge/router: re-resolve the headless Services every 5 s",
    "OMNIROUTE_HOP_WINDOW": "edge/router: frames of one streamed answer in flight before credit (64)",
    "OMNIROUTE_CPROFILE": "every service: write a cProfile of the run to this folder (benchmarks only)",
    "OMNIROUTE_CONFIG_REFRESH_S": "snapshot refresh period besides config.changed (30 s)",
    "QDRANT_COLLECTION_PREFIX": "router: before the semantic cache's collection names (empty)",
    "OMNIROUTE_USAGE_RETENTION_DAYS": "accounting: usage rows kept (90 days)",
    "OMNIROUTE_RETENTION_INTERVAL_S": "accounting: retention sweep period",
    "OMNIROUTE_BUDGET_REBUILD_INTERVAL_S": "accounting: budget counter rebuild period",
    "OMNIROUTE_BUDGET_HOLD_S": "router: how long a dead router's budget reservations live",
    "OMNIROUTE_BUDGET_SETTLED_HOLD_S": "router: how long a settled reservation waits for the ingest",
    "OMNIROUTE_BUDGET_DEFAULT_MAX_TOKENS": "router: output tokens reserved without max_tokens (4096)",
    "OMNIROUTE_BUDGET_TIMEZONE": "every service alike: the budget periods' time zone (UTC)",
    "OMNIROUTE_BUDGET_ALERT_WEBHOOK_URL": "accounting: budget alert webhook when the admin set none",
    "OMNIROUTE_BUDGET_ALERT_WEBHOOK_SECRET": "accounting: its signing secret (the admin's wins)",
    "OMNIROUTE_BUDGET_ALERT_RETRY_S": "accounting: first retry delay of a failed alert webhook (1 s)",
    "OMNIROUTE_DEFAULT_PRICE_INPUT_PER_MTOK": "router/accounting: an unpriced model's input price (3)",
    "OMNIROUTE_DEFAULT_PRICE_OUTPUT_PER_MTOK": "router/accounting: an unpriced model's output price (15)",
    "OMNIROUTE_DEFAULT_PRICE_PER_IMAGE": "router/accounting: an unpriced model's image price (0.08)",
    "OMNIROUTE_DEFAULT_PRICE_PER_AUDIO_SECOND": "router/accounting: an unpriced model's audio second (0.0002)",
    "OMNIROUTE_TELEMETRY_WINDOW_S": "admin: telemetry window",
    "OMNIROUTE_SESSIONS_WINDOW_S": "admin: sessions window",
    "OMNIROUTE_TRACE_FILE": "tests: spans to a file",
    "OMNIROUTE_CLI_HOME": "admin: CLI tool configs, meaningful only where the tools run",
    "EXECUTOR_FAMILIES": "executor: the chart passes --family instead",
    "OMNIROUTE_EVENT_BUFFER_MAX": "router: usage events held while NATS is away (100000)",
    "OMNIROUTE_EVENT_BUFFER_MAX_AGE_S": "router: oldest usage event held while NATS is away (900 s)",
}
# Not the services' own: the devstack launcher (make run / make test).
NOT_SERVICES = ("libs/omniroute/devstack/",)


def _env_names_read_by_the_code() -> dict[str, str]:
    """Every environment variable name libs/ and services/ read (settings.py and elsewhere),
    with the first file that reads it."""
    import re

    names: dict[str, str] = {}
    for path in sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(NOT_SERVICES) or "/v1/" in rel:
            continue
        text = path.read_text()
        constants = dict(re.findall(r'^([A-Z_]+) = "([A-Z][A-Z0-9_]+)"', text, re.M))
        found = re.findall(r'(?:os\.environ(?:\.get)?[\[(]|_flag\()\s*"([A-Z][A-Z0-9_]+)"', text)
        found += [constants[c] for c in re.findall(r"os\.environ(?:\.get)?[\[(]\s*([A-Z_]+)\b", text)
                  if c in constants]
        for name in found:
            names.setdefault(name, rel)
    return names


def _container_envs(objs: Iterable[Obj]) -> dict[str, dict[str, Obj]]:
    return {d["metadata"]["name"]: env_of(d["spec"]["template"]["spec"]["containers"][0])
            for d in of_kind(objs, "Deployment")}


def test_every_variable_the_services_read_is_set_or_documented() -> None:
    """A variable a service starts reading (libs/omniroute/settings.py or os.environ anywhere in
    libs/ and services/) must be set by the chart, or listed in LEFT_TO_DEFAULTS and described
    in docs/deploy.md."""
    read = _env_names_read_by_the_code()
    assert {"DATABASE_URL", "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", "OTEL_METRICS_EXPORTER"} <= set(read)
    set_somewhere = {name for env in _container_envs(objects("defaults")).values() for name in env}
    missing = {n: f for n, f in read.items() if n not in set_somewhere and n not in LEFT_TO_DEFAULTS}
    assert not missing, f"read by the code but neither set by the chart nor in LEFT_TO_DEFAULTS: {missing}"
    stale = set(LEFT_TO_DEFAULTS) - set(read)
    assert not stale, f"LEFT_TO_DEFAULTS names no longer read by the code: {stale}"
    guide = (ROOT / "docs" / "deploy.md").read_text()
    undocumented = [n for n in LEFT_TO_DEFAULTS if n not in guide]
    assert not undocumented, f"describe in docs/deploy.md: {undocumented}"


@pytest.mark.parametrize("scenario", ["defaults", "production-example", "dev-example"])
def test_production_settings(scenario: str) -> None:
    objs = objects(scenario)
    envs = _container_envs(objs)
    assert envs
    for name, e in envs.items():
        # The SSRF guard is on in production; only the dev loop (mock upstreams) opens it.
        expected = "true" if scenario == "dev-example" else "false"
        assert e["OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS"]["value"] == expected, name
        # /metrics on the port the Service and the ServiceMonitor scrape.
        assert e["OTEL_METRICS_EXPORTER"]["value"] == "prometheus", name
        assert e["OMNIROUTE_METRICS_PORT"]["value"] == "9464", name
        assert e["LOG_LEVEL"]["value"] == "INFO", name
    router = envs["omniroute-router"]
    assert router["OMNIROUTE_BUDGET_FAIL_OPEN"]["value"] == "true"
    assert router["OMNIROUTE_STATE_FAIL_OPEN"]["value"] == "false"
    admin_dep = by_name(objs, "Deployment")["omniroute-admin"]
    admin = envs["omniroute-admin"]
    # Backups go to a writable volume (read-only root file system).
    backup_dir = admin["OMNIROUTE_BACKUP_DIR"]["value"]
    (mount,) = [m for m in admin_dep["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                if m["mountPath"] == backup_dir]
    assert not mount.get("readOnly")
    volumes = {v["name"]: v for v in admin_dep["spec"]["template"]["spec"]["volumes"]}
    volume = volumes[mount["name"]]
    if scenario == "production-example":
        claim = volume["persistentVolumeClaim"]["claimName"]
        pvc = by_name(objs, "PersistentVolumeClaim")[claim]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "two admin replicas share it"
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert admin["OMNIROUTE_PUBLIC_URL"]["value"] == "https://ai.example.com"
    else:
        assert "emptyDir" in volume
        assert admin["OMNIROUTE_PUBLIC_URL"]["value"] == "http://omniroute-edge:20128"
    evals = admin["OMNIROUTE_EVALS_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert evals["key"] == "OMNIROUTE_EVALS_API_KEY" and evals["optional"] is True
    # Admin's health page reaches every service through its Service.
    services = by_name(objs, "Service")
    for var in ("EDGE_HEALTH_URL", "ACCOUNTING_HEALTH_URL", "ANALYTICS_HEALTH_URL"):
        host_port = admin[var]["value"].removeprefix("http://").split("/")[0]
        host, port = host_port.split(":")
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]], var
    assert admin["ROUTER_ADDR"]["value"] == envs["omniroute-edge"]["ROUTER_ADDR"]["value"]


def test_settings_follow_values() -> None:
    objs = render(deep_merge(EXTERNAL, {
        "allowPrivateUpstreams": True, "logLevel": "DEBUG",
        "metrics": {"enabled": False, "port": 9100},
        "router": {"budgetFailOpen": False, "stateFailOpen": True},
        "ingress": {"enabled": True, "hosts": ["gw.example.com"]},
        "secrets": {"evalsApiKey": "sk-evals"},
        "admin": {"backups": {"persistence": {"enabled": True, "existingClaim": "my-backups"}}},
    }))
    envs = _container_envs(objs)
    for name, e in envs.items():
        assert e["OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS"]["value"] == "true", name
        assert e["OTEL_METRICS_EXPORTER"]["value"] == "none", name
        assert e["OMNIROUTE_METRICS_PORT"]["value"] == "9100", name
        assert e["LOG_LEVEL"]["value"] == "DEBUG", name
    assert envs["omniroute-router"]["OMNIROUTE_BUDGET_FAIL_OPEN"]["value"] == "false"
    assert envs["omniroute-router"]["OMNIROUTE_STATE_FAIL_OPEN"]["value"] == "true"
    assert envs["omniroute-admin"]["OMNIROUTE_PUBLIC_URL"]["value"] == "http://gw.example.com"
    secret = by_name(objs, "Secret")["omniroute"]
    assert base64.b64decode(secret["data"]["OMNIROUTE_EVALS_API_KEY"]).decode() == "sk-evals"
    admin = by_name(objs, "Deployment")["omniroute-admin"]["spec"]["template"]["spec"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "my-backups"}} in admin["volumes"]
    assert not of_kind(objs, "PersistentVolumeClaim"), "an existing claim is not rendered"


def test_router_without_qdrant_server_uses_local_mode_on_an_empty_dir() -> None:
    objs = render(deep_merge(EXTERNAL, {"externalQdrant": {"url": ""}}))
    router = by_name(objs, "Deployment")["omniroute-router"]["spec"]["template"]["spec"]
    path = env_of(router["containers"][0])["QDRANT_URL"]["value"]
    assert path.startswith("/"), "a path: Qdrant local mode"
    mounts = {m["mountPath"]: m["name"] for m in router["containers"][0]["volumeMounts"]}
    (where,) = [m for m in mounts if path.startswith(m + "/") and m != "/tmp"]
    volume = next(v for v in router["volumes"] if v["name"] == mounts[where])
    assert volume["emptyDir"]["sizeLimit"] == "1Gi"
    # With a server, no local volume.
    server = by_name(objects("external"), "Deployment")["omniroute-router"]["spec"]["template"]["spec"]
    assert [v["name"] for v in server["volumes"]] == ["tmp"]


def test_every_router_replica_shares_the_qdrant_server_with_its_key() -> None:
    """Several routers share one semantic cache: each pod of the router Deployment gets the
    server's URL (no local-mode volume) and the optional API key from the chart's Secret."""
    values = deep_merge(EXTERNAL, {"router": {"replicaCount": 3, "autoscaling": {"enabled": False}},
                                   "secrets": {"qdrantApiKey": "qk-123"}})
    objs = render(values)
    router = by_name(objs, "Deployment")["omniroute-router"]
    assert router["spec"]["replicas"] == 3
    pod = router["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["QDRANT_URL"]["value"] == EXTERNAL["externalQdrant"]["url"]
    assert env["QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "omniroute", "key": "QDRANT_API_KEY", "optional": True}
    assert "semantic-cache" not in [v["name"] for v in pod["volumes"]]
    secret = by_name(objs, "Secret")["omniroute"]
    assert base64.b64decode(secret["data"]["QDRANT_API_KEY"]).decode() == "qk-123"
    # Without a key the Secret has none, and the reference stays optional.
    assert "QDRANT_API_KEY" not in by_name(render(EXTERNAL), "Secret")["omniroute"]["data"]
    # The bundled Qdrant chart: its service for every replica.
    bundled = by_name(render({}), "Deployment")["omniroute-router"]
    assert env_of(bundled["spec"]["template"]["spec"]["containers"][0])["QDRANT_URL"]["value"] == (
        "http://omniroute-qdrant:6333")


@pytest.mark.parametrize("scenario", ["defaults", "production-example", "dev-example", "overrides"])
def test_env_names_are_unique(scenario: str) -> None:
    """Kubernetes (server-side apply) refuses a container with one env name twice; `env` and
    `extraEnv` override the chart's own values instead of repeating them."""
    if scenario == "overrides":
        objs = render(deep_merge(EXTERNAL, {
            "edge": {"env": {"LOG_LEVEL": "DEBUG", "OMNIROUTE_MAX_BODY_BYTES": 1048576}},
            "router": {"extraEnv": [{"name": "OMNIROUTE_BUDGET_FAIL_OPEN", "valueFrom": {
                "configMapKeyRef": {"name": "flags", "key": "fail-open"}}}]},
        }))
        envs = _container_envs(objs)
        assert envs["omniroute-edge"]["LOG_LEVEL"]["value"] == "DEBUG"
        assert envs["omniroute-edge"]["OMNIROUTE_MAX_BODY_BYTES"]["value"] == "1048576"
        assert "configMapKeyRef" in envs["omniroute-router"]["OMNIROUTE_BUDGET_FAIL_OPEN"]["valueFrom"]
    else:
        objs = objects(scenario)
    for d in of_kind(objs, "Deployment") + of_kind(objs, "Job"):
        names = [e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]]
        assert len(names) == len(set(names)), (d["metadata"]["name"], names)


def test_bundled_backing_services_use_the_subcharts_secrets() -> None:
    objs = objects("defaults")
    router = by_name(objs, "Deployment")["omniroute-router"]
    e = env_of(router["spec"]["template"]["spec"]["containers"][0])
    assert e["NATS_URL"]["value"] == "nats://omniroute-nats:4222"
    assert e["QDRANT_URL"]["value"] == "http://omniroute-qdrant:6333"
    assert e["OMNIROUTE_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "omniroute-postgresql",
        "key": "password",
    }
    assert "$(OMNIROUTE_DB_PASSWORD)@omniroute-postgresql:5432/omniroute" in e["DATABASE_URL"]["value"]
    assert "$(OMNIROUTE_REDIS_PASSWORD)@omniroute-redis-master:6379" in e["REDIS_URL"]["value"]
    names = list(e)  # $(VAR) only expands variables defined earlier
    assert names.index("OMNIROUTE_DB_PASSWORD") < names.index("DATABASE_URL")
    assert names.index("OMNIROUTE_REDIS_PASSWORD") < names.index("REDIS_URL")
    # A release called differently still finds its subcharts.
    other = render({}, release="gw")
    r = by_name(other, "Deployment")["gw-omniroute-router"]
    assert (
        env_of(r["spec"]["template"]["spec"]["containers"][0])["NATS_URL"]["value"] == "nats://gw-nats:4222"
    )


def test_existing_secret() -> None:
    objs = objects("existing-secret")
    assert not [s for s in of_kind(objs, "Secret")], "no Secret when existingSecret is set"
    refs = set()
    for d in of_kind(objs, "Deployment") + of_kind(objs, "Job"):
        for var in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "omniroute-creds", (d["metadata"]["name"], var)
                refs.add(ref["key"])
    assert {"OMNIROUTE_MASTER_KEY", "DATABASE_URL", "REDIS_URL"} <= refs


def test_migration_job_is_a_hook() -> None:
    ext = objects("external")
    (job,) = of_kind(ext, "Job")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["python", "-m", "omniroute.store.migrate"]
    # Pre-install runs before the chart's Secret exists: the Job reads a hook Secret created first.
    ref = env_of(c)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    hook_secret = by_name(ext, "Secret")[ref["name"]]
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == ann["helm.sh/hook"]
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        ann["helm.sh/hook-weight"]
    )
    assert "serviceAccountName" not in job["spec"]["template"]["spec"], "release ServiceAccounts come later"
    # The bundled database exists only after install: migrate post-install, then pre-upgrade.
    (bundled,) = of_kind(objects("defaults"), "Job")
    assert bundled["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    (existing,) = of_kind(objects("existing-secret"), "Job")
    ref = env_of(existing["spec"]["template"]["spec"]["containers"][0])["DATABASE_URL"]["valueFrom"][
        "secretKeyRef"
    ]
    assert ref == {"name": "omniroute-creds", "key": "DATABASE_URL"}


# ---- network ------------------------------------------------------------------------------


def _peers_are_internal(peers: list[Obj]) -> bool:
    return all("ipBlock" not in p for p in peers)


@pytest.mark.parametrize("scenario", ["defaults", "families", "production-example"])
def test_network_policies(scenario: str) -> None:
    objs = objects(scenario)
    policies = {
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p
        for p in of_kind(objs, "NetworkPolicy")
    }
    assert set(policies) == {"edge", "admin", "router", "executor", "accounting", "analytics", "migrations"}
    # Every pod the chart runs is selected by a policy.
    for w in of_kind(objs, "Deployment") + of_kind(objs, "Job"):
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert any(selects(p["spec"]["podSelector"]["matchLabels"], labels) for p in policies.values())
    for comp, p in policies.items():
        spec = p["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        public = [r for r in spec.get("ingress", []) if "from" not in r]
        if comp in ("edge", "admin") and scenario != "production-example":
            assert public and all(port["port"] == "http" for r in public for port in r["ports"]), comp
        else:
            assert not public, f"{comp} takes traffic from anywhere"
            assert all(_peers_are_internal(r["from"]) for r in spec.get("ingress", [])), comp
        egress = spec["egress"]
        dns = [r for r in egress if {"port": 53, "protocol": "UDP"} in r.get("ports", [])]
        assert dns, f"{comp}: no DNS"
        internet = [r for r in egress if "to" in r and not _peers_are_internal(r["to"])]
        unrestricted = [r for r in egress if "to" not in r and r not in dns]
        assert not unrestricted, comp
        if comp == "executor":
            blocks = [peer["ipBlock"] for r in internet for peer in r["to"] if "ipBlock" in peer]
            assert {"0.0.0.0/0", "::/0"} <= {b["cidr"] for b in blocks}
            v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
            assert "169.254.169.254/32" in v4["except"], "no cloud metadata from executors"
        else:
            # Others reach in-cluster peers, or private ranges listed in clusterPeers.
            for r in internet:
                for peer in r["to"]:
                    cidr = peer.get("ipBlock", {}).get("cidr", "10.0.0.0/8")
                    assert cidr.startswith(("10.", "172.16.", "192.168.")), f"{comp} reaches the internet"
    # Only the edge (calls) and the admin (health) reach the router; only the router (calls) and
    # the admin (provider tests, model lists, health) reach executors.
    def sources(comp: str) -> set[str]:
        rule = policies[comp]["spec"]["ingress"][0]
        return {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}

    def pod_peer(comp: str) -> Obj:
        return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "omniroute",
                                                "app.kubernetes.io/instance": "omniroute",
                                                "app.kubernetes.io/component": comp}}}

    assert policies["router"]["spec"]["ingress"][0]["from"] == [pod_peer("edge"), pod_peer("admin")]
    assert sources("executor") == {"router", "admin"}
    assert sources("accounting") == sources("analytics") == {"admin"}
    # The admin's egress reaches what its health page and provider tests call.
    admin_to = {(port["port"], peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"])
                for r in policies["admin"]["spec"]["egress"] for peer in r.get("to", [])
                if "podSelector" in peer for port in r["ports"]}
    assert {("grpc", "router"), ("grpc", "executor"), ("http", "edge"), ("health", "accounting"),
            ("health", "analytics")} <= admin_to
    # Named ports in policies exist on the pods they select.
    deps = of_kind(objs, "Deployment")
    for comp, p in policies.items():
        for r in p["spec"].get("ingress", []):
            for port in r["ports"]:
                if isinstance(port["port"], str):
                    for d in deps:
                        if selects(
                            p["spec"]["podSelector"]["matchLabels"],
                            d["spec"]["template"]["metadata"]["labels"],
                        ):
                            names = {
                                cp["name"] for cp in d["spec"]["template"]["spec"]["containers"][0]["ports"]
                            }
                            assert port["port"] in names, (comp, port)


def _pod_peers(rule: Obj, key: str) -> set[str]:
    return {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for p in rule.get(key, []) if "podSelector" in p}


def _allowed(policy: Obj, direction: str, peer: str) -> set[str]:
    """The ports a component's policy opens to (egress) or from (ingress) the pods of `peer`."""
    key = "to" if direction == "egress" else "from"
    return {port["port"] for r in policy["spec"].get(direction, []) if peer in _pod_peers(r, key)
            for port in r["ports"]}


@pytest.mark.parametrize("scenario", ["defaults", "families", "production-example"])
def test_network_policies_let_session_streams_through_where_grpc_goes(scenario: str) -> None:
    """Edge → router and router → executor: `sessions` is allowed both ways (caller's egress,
    callee's ingress) next to `grpc`; the admin only calls gRPC."""
    objs = objects(scenario)
    policies = {component(p): p for p in of_kind(objs, "NetworkPolicy")}
    for caller, callee in (("edge", "router"), ("router", "executor")):
        assert {"grpc", "sessions"} <= _allowed(policies[caller], "egress", callee), (caller, callee)
        assert {"grpc", "sessions"} <= _allowed(policies[callee], "ingress", caller), (caller, callee)
    for callee in ("router", "executor"):
        assert _allowed(policies["admin"], "egress", callee) == {"grpc"}
        assert _allowed(policies[callee], "ingress", "admin") == {"grpc"}
    # Named ports a policy lets a component reach exist on the pods it reaches.
    deps = of_kind(objs, "Deployment")
    for comp, p in policies.items():
        for r in p["spec"]["egress"]:
            for peer in _pod_peers(r, "to"):
                pods = [d for d in deps if component(d) == peer]
                for port in r["ports"]:
                    for d in pods:
                        names = {cp["name"] for cp in d["spec"]["template"]["spec"]["containers"][0]["ports"]}
                        assert port["port"] in names, (comp, peer, port, d["metadata"]["name"])


def test_no_session_port_no_sessions_rule() -> None:
    """Without router.sessionPort the router renders as before: no `sessions` port, no env, and
    no policy names a port its pods lack."""
    objs = render(deep_merge(EXTERNAL, {"router": {"sessionPort": None}}))
    router = by_name(objs, "Deployment")["omniroute-router"]["spec"]["template"]["spec"]["containers"][0]
    assert "sessions" not in {p["name"] for p in router["ports"]}
    assert "OMNIROUTE_HOP_TCP_PORT" not in env_of(router)
    policies = {component(p): p for p in of_kind(objs, "NetworkPolicy")}
    assert "sessions" not in _allowed(policies["edge"], "egress", "router")
    assert "sessions" not in _allowed(policies["router"], "ingress", "edge")
    assert "sessions" in _allowed(policies["router"], "egress", "executor")
    assert not validate(objs)
    # Executors without a common sessionPort: only a family given its own has one, and the
    # router may still reach it.
    objs = render(deep_merge(EXTERNAL, {"executor": {"sessionPort": None,
                                                     "families": {"anthropic": {"sessionPort": 50072}}}}))
    with_sessions = {d["metadata"]["name"] for d in of_kind(objs, "Deployment")
                     if "sessions" in {p["name"] for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]}}
    assert with_sessions == {"omniroute-router", "omniroute-executor-anthropic"}
    policies = {component(p): p for p in of_kind(objs, "NetworkPolicy")}
    assert "sessions" in _allowed(policies["router"], "egress", "executor")
    assert "sessions" in _allowed(policies["executor"], "ingress", "router")


def test_network_policy_can_be_disabled() -> None:
    assert not of_kind(objects("no-networkpolicy"), "NetworkPolicy")


def _route(ingress: Obj, path: str) -> str:
    """The Service a request path reaches: the longest matching Prefix wins."""
    best, svc = -1, ""
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            prefix = p["path"].rstrip("/")
            if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best:
                best, svc = len(prefix), p["backend"]["service"]["name"]
    return svc


def test_ingress_routes() -> None:
    assert not of_kind(objects("external"), "Ingress")
    (ing,) = of_kind(objects("ingress"), "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"][0]["secretName"] == "ai-tls"
    services = by_name(objects("ingress"), "Service")
    for path, target in {
        "/v1/chat/completions": "omniroute-edge",
        "/v1/messages": "omniroute-edge",
        "/v1beta/models/gemini-pro:generateContent": "omniroute-edge",
        "/api/tags": "omniroute-edge",
        "/api/chat": "omniroute-edge",
        "/mcp": "omniroute-edge",
        "/api/providers": "omniroute-admin",
        "/api": "omniroute-admin",
        "/dashboard": "omniroute-admin",
        "/dashboard/keys": "omniroute-admin",
    }.items():
        assert _route(ing, path) == target, path
    for rule in ing["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            svc = services[p["backend"]["service"]["name"]]
            assert p["backend"]["service"]["port"]["name"] in {x["name"] for x in svc["spec"]["ports"]}


# ---- observability --------------------------------------------------------------------------


def test_service_monitor() -> None:
    assert not [o for o in objects("defaults") if o["kind"] == "ServiceMonitor"]
    objs = objects("monitoring")
    (sm,) = [o for o in objs if o["kind"] == "ServiceMonitor"]
    assert (sm["apiVersion"], sm["kind"]) in CRD_KINDS
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    scraped = [
        s
        for s in of_kind(objs, "Service")
        if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    deployments = of_kind(objs, "Deployment")
    assert len(scraped) == len(deployments), "one scraped Service per Deployment"
    for s in scraped:
        assert any(p["name"] == "metrics" and p["port"] == 9464 for p in s["spec"]["ports"])
    otel_off = env_of(deployments[0]["spec"]["template"]["spec"]["containers"][0])
    assert otel_off["OTEL_TRACES_EXPORTER"]["value"] == "none"


def test_grafana_dashboards_ship_as_configmaps() -> None:
    files = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert files
    cms = [
        c
        for c in of_kind(objects("defaults"), "ConfigMap")
        if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert len(cms) == len(files)
    shipped = {k: v for c in cms for k, v in c["data"].items()}
    readme = (ROOT / "deploy" / "grafana" / "README.md").read_text()
    for f in files:
        dash = json.loads(shipped[f.name])
        assert dash == json.loads(f.read_text())
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        titles = " ".join(p["title"].lower() for p in dash["panels"])
        # The overview answers the first questions; the others (providers, keys, cache) go deeper.
        for word in ("request rate", "error rate", "p50", "p95", "p99", "tokens", "cost"):
            assert word in titles or f.name != "omniroute-overview.json", word
        metrics = {m for e in exprs for m in __import__("re").findall(r"omniroute_[a-z_]+", e)}
        assert metrics, f.name
        for m in metrics:
            base = m.removesuffix("_bucket")
            assert base in readme, f"{m} used by {f.name} but not documented in deploy/grafana/README.md"


def test_config_map_carries_omniroute_config() -> None:
    objs = render(deep_merge(EXTERNAL, {"config": {"settings": {"require_api_key": True}}}))
    cm = by_name(objs, "ConfigMap")["omniroute-config"]
    assert yaml.safe_load(cm["data"]["config.yaml"]) == {"settings": {"require_api_key": True}}
    admin = by_name(objs, "Deployment")["omniroute-admin"]
    vols = admin["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": "omniroute-config"}} in vols
    assert "checksum/configmap" in admin["spec"]["template"]["metadata"]["annotations"]


def test_chart_dependencies() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"nats", "postgresql", "redis", "qdrant"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name, d in deps.items():
        assert d["condition"] == f"{name}.enabled" and isinstance(values[name]["enabled"], bool)
        assert d["repository"].startswith(("https://", "oci://"))
    assert values["nats"]["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["nats"]["config"]["jetstream"]["enabled"] is True
    listed = {d["name"] for d in helm.dependency_list(str(CHART))}
    assert listed == set(deps)


def test_examples_exist() -> None:
    for name in ("production.yaml", "dev.yaml"):
        assert (EXAMPLES / name).exists()
    prod = load_values(EXAMPLES / "production.yaml")
    assert prod["secrets"]["existingSecret"]
