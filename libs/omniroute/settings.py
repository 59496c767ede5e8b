"""Process settings, read once from the environment. One place for every variable.

Every environment variable a service reads is a field here (the devstack launcher aside); code
takes the value from a Settings it was given, or from `load()` where a process starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    # Namespace for NATS subjects / stream names and Redis keys, so that several stacks can
    # share one NATS and one Redis (tests, staging beside production).
    env: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_ENV", "omniroute"))
    database_url: str = field(default_factory=lambda: os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/omniroute"))
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    nats_url: str = field(default_factory=lambda: os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    qdrant_url: str = field(default_factory=lambda: os.environ.get("QDRANT_URL", ""))
    # A Qdrant server's API key (sent as `api-key`), and a prefix for the semantic cache's
    # collection names (e.g. "semcache." for a server that maps `schema.` to its own namespaces).
    qdrant_api_key: str = field(default_factory=lambda: os.environ.get("QDRANT_API_KEY", ""))
    qdrant_collection_prefix: str = field(default_factory=lambda: os.environ.get("QDRANT_COLLECTION_PREFIX", ""))
    master_key: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_MASTER_KEY", ""))
    config_file: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_CONFIG", ""))
    require_api_key: bool = field(default_factory=lambda: _flag("REQUIRE_API_KEY", True))
    edge_port: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_PORT", "20128")))
    admin_port: int = field(default_factory=lambda: int(os.environ.get("ADMIN_PORT", "20129")))
    router_port: int = field(default_factory=lambda: int(os.environ.get("ROUTER_PORT", "50051")))
    executor_port: int = field(default_factory=lambda: int(os.environ.get("EXECUTOR_PORT", "50061")))
    accounting_port: int = field(default_factory=lambda: int(os.environ.get("ACCOUNTING_PORT", "20131")))
    analytics_port: int = field(default_factory=lambda: int(os.environ.get("ANALYTICS_PORT", "20132")))
    bind_host: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_BIND", "127.0.0.1"))
    router_addr: str = field(default_factory=lambda: os.environ.get("ROUTER_ADDR", "127.0.0.1:50051"))
    # "family=host:port,…"; a family without an entry uses EXECUTOR_ADDR.
    executor_addrs: str = field(default_factory=lambda: os.environ.get("EXECUTOR_ADDRS", ""))
    executor_addr: str = field(default_factory=lambda: os.environ.get("EXECUTOR_ADDR", "127.0.0.1:50061"))
    admin_url: str = field(default_factory=lambda: os.environ.get("ADMIN_URL", "http://127.0.0.1:20129"))
    max_body_bytes: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_MAX_BODY_BYTES",
                                                                           str(32 * 1024 * 1024))))
    upstream_timeout_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_UPSTREAM_TIMEOUT_S", "600")))
    config_refresh_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_CONFIG_REFRESH_S", "30")))
    initial_password: str = field(default_factory=lambda: os.environ.get("INITIAL_PASSWORD", "123456"))
    # Where the admin service keeps stored backups (a volume in Kubernetes).
    backup_dir: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_BACKUP_DIR",
                                                                   ".omniroute/backups"))
    # --- accounting, analytics, observability ---
    # Prometheus /metrics port (on when OTEL_METRICS_EXPORTER contains "prometheus").
    metrics_port: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_METRICS_PORT", "9464")))
    # Usage rows older than this are deleted by accounting (0 keeps them forever).
    usage_retention_days: int = field(default_factory=lambda: int(os.environ.get(
        "OMNIROUTE_USAGE_RETENTION_DAYS", "90")))
    retention_interval_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_RETENTION_INTERVAL_S", "3600")))
    # How often one accounting replica re-raises the Redis spend counters to Postgres's sums.
    budget_rebuild_interval_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_BUDGET_REBUILD_INTERVAL_S", "600")))
    # Router: when Redis cannot be read, let requests through without a budget check (True) or
    # refuse them with 503 (False). Open by default: a Redis blip must not stop all traffic.
    budget_fail_open: bool = field(default_factory=lambda: _flag("OMNIROUTE_BUDGET_FAIL_OPEN", True))
    # Router: how long a request's budget reservation lives when its router dies with it (0: the
    # upstream timeout plus a minute), how long a settled one waits for accounting's ingest, and
    # the output tokens a request without max_tokens is reserved for.
    budget_hold_s: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_BUDGET_HOLD_S", "0")))
    budget_settled_hold_s: int = field(default_factory=lambda: int(os.environ.get(
        "OMNIROUTE_BUDGET_SETTLED_HOLD_S", "900")))
    budget_default_max_tokens: int = field(default_factory=lambda: int(os.environ.get(
        "OMNIROUTE_BUDGET_DEFAULT_MAX_TOKENS", "4096")))
    # Budget periods (daily, weekly, monthly) start at midnight in this IANA time zone; read by
    # omniroute.shared_state.budget.budget_zone in every process (they must all agree).
    budget_timezone: str = field(default_factory=lambda: budget_timezone())
    # What a model without a price in the pricing table is charged (accounting and the router's
    # reservation alike), per million input / output tokens, per image and per audio second.
    default_price_input_per_mtok: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_DEFAULT_PRICE_INPUT_PER_MTOK", "3"))
    default_price_output_per_mtok: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_DEFAULT_PRICE_OUTPUT_PER_MTOK", "15"))
    default_price_per_image: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_DEFAULT_PRICE_PER_IMAGE", "0.08"))
    default_price_per_audio_second: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_DEFAULT_PRICE_PER_AUDIO_SECOND", "0.0002"))
    # Accounting: where budget threshold alerts are POSTed ("" = NATS event only), the shared
    # secret that signs them, and the first retry delay (doubled per attempt; omniroute.alerts).
    budget_alert_webhook_url: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_BUDGET_ALERT_WEBHOOK_URL", ""))
    budget_alert_webhook_secret: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_BUDGET_ALERT_WEBHOOK_SECRET", ""), repr=False)
    budget_alert_retry_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_BUDGET_ALERT_RETRY_S", "1")))
    # Redis down: refuse (503 state_store_unavailable, the default) or serve without limits,
    # caches and breakers (omniroute_router.stateless).
    state_fail_open: bool = field(default_factory=lambda: _flag("OMNIROUTE_STATE_FAIL_OPEN", False))
    telemetry_window_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_TELEMETRY_WINDOW_S", "3600")))
    # Router: usage events wait in memory while NATS is away, at most this many and this long;
    # past either limit they are dropped (counted in omniroute.events.dropped, logged).
    event_buffer_max: int = field(default_factory=lambda: int(os.environ.get(
        "OMNIROUTE_EVENT_BUFFER_MAX", "100000")))
    event_buffer_max_age_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_EVENT_BUFFER_MAX_AGE_S", "900")))
    sessions_window_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_SESSIONS_WINDOW_S", "900")))
    # --- every service's process ---
    log_level: str = field(default_factory=lambda: os.environ.get("LOG_LEVEL", "INFO").upper())
    # Graceful shutdown: how long a service lets running requests finish after SIGTERM (the chart
    # sets it from the pod's termination grace period).
    drain_s: float = field(default_factory=lambda: float(os.environ.get("OMNIROUTE_DRAIN_S", "30")))
    # How edge → router and router → executor calls travel (omniroute.hop_streams): "stream" =
    # messages on long-lived gRPC bidi streams, many requests multiplexed by id; "tcp" = the same
    # messages on plain TCP connections (hop_streams.tcp; the port is learnt from the server);
    # "unary" = one gRPC call per request (the Chat / ChatWhole / Execute / ExecuteWhole RPCs).
    hop_transport: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_HOP_TRANSPORT", "tcp"))
    # Router and executor: the TCP port of their session streams (0: any free port, named to
    # clients in the gRPC Session stream's headers; -1: none). The chart fixes it (NetworkPolicy).
    hop_tcp_port: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_HOP_TCP_PORT", "0")))
    # Long-lived streams per peer address (each address a name resolves to: every pod of a
    # headless Service), and how often such a name is resolved again.
    hop_streams_per_peer: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_HOP_STREAMS", "4")))
    hop_dns_refresh_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_HOP_DNS_REFRESH_S", "5")))
    # Frames a server may send for one request before the caller has consumed some (per-request
    # back-pressure: a slow consumer holds back its own request, never the stream).
    hop_window: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_HOP_WINDOW", "64")))
    # A folder: the process writes a cProfile of its whole run there (benchmarks only).
    cprofile_dir: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_CPROFILE", ""))
    # OpenTelemetry exporters, comma lists of otlp|console|none (metrics also prometheus).
    traces_exporter: str = field(default_factory=lambda: os.environ.get("OTEL_TRACES_EXPORTER", "none"))
    metrics_exporter: str = field(default_factory=lambda: os.environ.get("OTEL_METRICS_EXPORTER", "none"))
    # The service name in traces and metrics; empty: the service's own (omniroute-edge, …).
    otel_service_name: str = field(default_factory=lambda: os.environ.get("OTEL_SERVICE_NAME", ""))
    # Finished spans as JSON lines to this file (tests, local debugging).
    trace_file: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_TRACE_FILE", ""))
    # Upstreams on private and loopback addresses (a LAN model, the mock upstreams); the SSRF
    # guard refuses them otherwise (omniroute.ssrf).
    allow_private_upstreams: bool = field(default_factory=lambda: _flag(
        "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS", False))
    # --- edge ---
    edge_workers: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_EDGE_WORKERS", "1")))
    # The edge's HTTP server: uvicorn (httptools), or granian for re-measuring the choice
    # (python -m bench.edge_server; bench/README.md). Granian is a benchmark dependency only.
    edge_server: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_EDGE_SERVER", "uvicorn"))
    # Time to receive a request body (a client that trickles it gets 408).
    body_timeout_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_BODY_TIMEOUT_S", "60")))
    # SSE progress comments while a stream that asked for them waits for its answer to start.
    progress_interval_s: float = field(default_factory=lambda: float(os.environ.get(
        "OMNIROUTE_PROGRESS_INTERVAL_S", "1")))
    max_audio_bytes: int = field(default_factory=lambda: int(os.environ.get(
        "OMNIROUTE_MAX_AUDIO_BYTES", str(25 * 1024 * 1024))))
    # --- executor ---
    # Families served when --family is not given: comma list or "all".
    executor_families: str = field(default_factory=lambda: os.environ.get("EXECUTOR_FAMILIES", "all"))
    # --- admin ---
    # The gateway's URL as clients use it (CLI configs, eval runs); empty: the edge on this machine.
    public_url: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_PUBLIC_URL", "").strip())
    # Where the CLI tools' configs are written; empty: the admin user's home.
    cli_home: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_CLI_HOME", ""))
    # The OmniRoute key eval runs use when the caller gives none (keys are stored hashed only).
    evals_api_key: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_EVALS_API_KEY", ""))
    # Single sign-on with OpenID Connect (admin, features/oidc.py): on when the issuer and the
    # client id are set. No client secret: a public client (PKCE only). The maps are JSON:
    # group → role ("owner", "admin", "team_admin", "viewer") and group → [team ids].
    oidc_issuer: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_ISSUER", "").strip())
    oidc_client_id: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_CLIENT_ID", "").strip())
    oidc_client_secret: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_CLIENT_SECRET", ""))
    # The "<provider>" of the login page's "Sign in with <provider>".
    oidc_display_name: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_OIDC_DISPLAY_NAME", "").strip() or "single sign-on")
    oidc_scopes: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_OIDC_SCOPES", "").strip() or "openid email profile groups")
    oidc_groups_claim: str = field(default_factory=lambda: os.environ.get(
        "OMNIROUTE_OIDC_GROUPS_CLAIM", "").strip() or "groups")
    oidc_role_map: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_ROLE_MAP", "{}"))
    oidc_team_map: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_TEAM_MAP", "{}"))
    # Empty: OMNIROUTE_PUBLIC_URL (else the request's own URL) + /api/auth/oidc/callback.
    oidc_redirect_url: str = field(default_factory=lambda: os.environ.get("OMNIROUTE_OIDC_REDIRECT_URL", "").strip())
    oidc_clock_skew_s: int = field(default_factory=lambda: int(os.environ.get("OMNIROUTE_OIDC_CLOCK_SKEW_S") or "60"))
    # Health endpoints that /api/monitoring/health polls (defaults follow the port variables).
    edge_health_url: str = field(default_factory=lambda: os.environ.get(
        "EDGE_HEALTH_URL", f"http://127.0.0.1:{os.environ.get('OMNIROUTE_PORT', '20128')}/healthz"))
    accounting_health_url: str = field(default_factory=lambda: os.environ.get(
        "ACCOUNTING_HEALTH_URL", f"http://127.0.0.1:{os.environ.get('ACCOUNTING_PORT', '20131')}/healthz"))
    analytics_health_url: str = field(default_factory=lambda: os.environ.get(
        "ANALYTICS_HEALTH_URL", f"http://127.0.0.1:{os.environ.get('ANALYTICS_PORT', '20132')}/healthz"))

    def executor_address(self, family: str) -> str:
        for entry in self.executor_addrs.split(","):
            name, _, address = entry.strip().partition("=")
            if name == family and address:
                return address
        return self.executor_addr

    @property
    def stream_name(self) -> str:
        """JetStream stream holding usage, telemetry and audit events for this env."""
        return "".join(c if c.isalnum() else "_" for c in self.env).upper() + "_EVENTS"

    def subject(self, suffix: str) -> str:
        return f"{self.env}.{suffix}"


def budget_timezone() -> str:
    """OMNIROUTE_BUDGET_TIMEZONE alone: the budget periods' zone is needed by pure period helpers
    (omniroute.shared_state.budget) that are not handed a Settings, and building one per call is costly."""
    return os.environ.get("OMNIROUTE_BUDGET_TIMEZONE", "UTC")


def load() -> Settings:
    return Settings()
