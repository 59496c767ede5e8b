"""The gateway's URL as clients should use it: what CLI configs point at and what evals call."""

from __future__ import annotations

from omniroute.settings import Settings


def public_url(settings: Settings) -> str:
    """OMNIROUTE_PUBLIC_URL when set (behind a load balancer or in Kubernetes), else the edge on
    this machine — right for `make run` and for tools running where the admin runs."""
    explicit = settings.public_url
    return explicit.rstrip("/") if explicit else f"http://127.0.0.1:{settings.edge_port}"
