"""The Grafana dashboards in deploy/grafana/dashboards: valid JSON in the shape Grafana imports,
each on the `datasource` variable, every query on documented series (deploy/grafana/README.md),
panels on the 24-column grid without overlaps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
README = (ROOT / "deploy" / "grafana" / "README.md").read_text()
DS = {"type": "prometheus", "uid": "${datasource}"}


def test_the_four_dashboards_exist() -> None:
    names = {f.stem for f in DASHBOARDS}
    assert {"omniroute-overview", "omniroute-providers", "omniroute-keys-budgets", "omniroute-cache"} <= names
    for name in names:
        assert f"`{name}.json`" in README, f"{name} is not described in deploy/grafana/README.md"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    dash: dict[str, Any] = json.loads(path.read_text())
    assert dash["uid"] == path.stem and dash["title"] and "omniroute" in dash["tags"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DS
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        covered = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DS
            check_expr(target["expr"], set(variables))


def check_expr(expr: str, variables: set[str]) -> None:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"[^"]*"', '""', expr):  # brackets inside label values do not count
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            assert depth[closing[char]] >= 0, expr
    assert all(v == 0 for v in depth.values()), f"unbalanced: {expr}"
    for name in re.findall(r"\$(\w+)", expr):
        assert name.startswith("__") or name in variables, f"${name} is not a variable: {expr}"
    for metric in re.findall(r"\b((?:omniroute|gen_ai)_[a-z_]+)", expr):
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        assert f"`{base}" in README, f"{metric} is not documented in deploy/grafana/README.md"
