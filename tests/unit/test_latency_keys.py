"""The latency samples' key layout has one owner, omniroute.analytics_store: the analytics
service writes through it and the router's latency-optimized combos read through it (before, the
router read a key nothing wrote)."""

from __future__ import annotations

import re
from pathlib import Path

from omniroute.analytics_store import latency_key, latency_providers_key

ROOT = Path(__file__).resolve().parents[2]
OWNER = "libs/omniroute/analytics_store.py"
LAYOUT = re.compile(r""":latency:""")


def test_the_layout_is_written_in_one_module() -> None:
    found = [path.relative_to(ROOT).as_posix()
             for path in sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")])
             if LAYOUT.search(path.read_text())]
    assert found == [OWNER]


def test_the_keys() -> None:
    assert latency_key("prod", "openai") == "prod:latency:z:openai"
    assert latency_providers_key("prod") == "prod:latency:providers"
