"""Render charts/omniroute offline (helm-python-sdk: Helm v4's engine, no binary, no cluster)
and validate the objects with kubernetes-validate. Used by test_chart.py and runnable alone:

    .venv/bin/python -m tests.deploy.chart [values.yaml ...]   # render + validate, print a summary
    .venv/bin/python -m tests.deploy.chart --check             # `make chart-check`: chart_check()

`chart_check()` is the one definition of `make chart-check`'s offline checks; the Makefile target
and tests/deploy/test_chart.py::test_make_chart_check both call it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "omniroute"
EXAMPLES = CHART / "examples"
# The Kubernetes version objects are validated against (kubernetes-validate bundles its schemas).
KUBE_VERSION = "1.33.0"
RELEASE = "omniroute"
NAMESPACE = "omniroute"

# Subcharts can't be downloaded here; render them disabled, backing services external.
EXTERNAL: dict[str, Any] = {
    "nats": {"enabled": False},
    "postgresql": {"enabled": False},
    "redis": {"enabled": False},
    "qdrant": {"enabled": False},
    "externalNats": {"url": "nats://nats.messaging:4222"},
    "externalRedis": {"url": "redis://:pw@redis.cache:6379/0"},
    "externalQdrant": {"url": "http://qdrant.vectors:6333"},
    "secrets": {"databaseUrl": "postgresql://omniroute:pw@pg.db:5432/omniroute"},
}

# Kinds from CRDs: no schema is bundled, so test_chart checks them by hand.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def deep_merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for over in overrides:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = value
    return out


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    is_upgrade: bool = False,
) -> list[dict[str, Any]]:
    """Render the chart with `values` (validated against values.schema.json by Helm) and
    return every object, each tagged with the template it came from under "__source"."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(
            values or {},
            name=release,
            namespace=namespace,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
    objects: list[dict[str, Any]] = []
    for source, text in sorted(manifests.items()):
        if not source.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__source"] = source
                objects.append(doc)
    return objects


def validate(objects: Iterable[dict[str, Any]], version: str = KUBE_VERSION) -> list[str]:
    """kubernetes-validate --strict on every object with a bundled schema; returns errors."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    errors = []
    for obj in objects:
        data = {k: v for k, v in obj.items() if k != "__source"}
        where = f"{obj.get('__source')}: {data.get('kind')}/{data.get('metadata', {}).get('name')}"
        if (data.get("apiVersion"), data.get("kind")) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(data, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{where}: {path}: {e.message}")
        except SchemaNotFoundError as e:
            errors.append(f"{where}: {e.message}")
    return errors


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


# The value sets `make chart-check` renders: the defaults and the production example.
CHECKED_VALUES: dict[str, Path | None] = {"defaults": None, "production example": EXAMPLES / "production.yaml"}


def lint(values: dict[str, Any]) -> list[str]:
    """`helm lint --strict` (helm-python-sdk); the undownloaded subcharts are the only finding
    tolerated."""
    import helm_python as helm

    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}")
    return [f"lint: {m['error']}" for m in report["messages"]
            if m["severity"] >= 2 and "missing these dependencies" not in m["error"]]


def chart_check(verbose: bool = False) -> list[str]:
    """`make chart-check`: render the chart with every value set in CHECKED_VALUES, validate each
    object against the Kubernetes schemas (strict, offline) and lint it. Returns the problems,
    each prefixed with its value set; empty when all is well."""
    problems: list[str] = []
    for label, path in CHECKED_VALUES.items():
        values = load_values(path) if path else {}
        try:
            objects = render(values)
        except Exception as exc:  # a render or values-schema error is a finding, not a crash
            problems.append(f"{label}: render: {exc}")
            continue
        found = validate(objects) + lint(values)
        if not objects:
            found.append("nothing rendered")
        problems += [f"{label}: {p}" for p in found]
        if verbose:
            print(f"{label}: {summary(objects)}" + ("" if found else " — valid"))
    return problems


def summary(objects: Iterable[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for obj in objects:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = chart_check(verbose=True)
        for problem in problems:
            print("ERROR", problem)
        return 1 if problems else 0
    values: dict[str, Any] = {}
    for arg in argv:
        values = deep_merge(values, load_values(Path(arg)))
    objects = render(values)
    errors = validate(objects)
    print(summary(objects))
    for err in errors:
        print("ERROR", err)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
