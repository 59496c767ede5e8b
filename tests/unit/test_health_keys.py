"""A connection's health keys (cooldowns, model locks, breaker, headroom) have one owner:
omniroute.shared_state.health_keys. Writers, readers and the admin's clearing all build them there."""

from __future__ import annotations

import re
from pathlib import Path

from omniroute.shared_state.health_keys import HealthKeys

ROOT = Path(__file__).resolve().parents[2]
OWNER = "libs/omniroute/shared_state/health_keys.py"
LAYOUT = re.compile(r""":(?:cooldown|modellock|breaker|headroom):["'{]?""")


def test_the_layout_is_written_in_one_module() -> None:
    found = [path.relative_to(ROOT).as_posix()
             for path in sorted([*(ROOT / "libs").rglob("*.py"), *(ROOT / "services").rglob("*.py")])
             if LAYOUT.search(path.read_text())]
    assert found == [OWNER]


def test_a_connections_keys_and_the_patterns_that_find_its_per_model_ones() -> None:
    keys = HealthKeys("prod")
    assert keys.cooldown("p:a") == "prod:cooldown:p:a"
    assert keys.cooldown("p:a", "gpt-4o") == "prod:cooldown:p:a|gpt-4o"
    assert keys.model_lock("p:a", "gpt-4o") == "prod:modellock:p:a:gpt-4o"
    assert keys.breaker("p:a") == "prod:breaker:p:a"
    assert keys.headroom("p:a", "gpt-4o") == "prod:headroom:p:a|gpt-4o"
    assert keys.connection_patterns("p:a") == ["prod:cooldown:p:a|*", "prod:modellock:p:a:*",
                                               "prod:headroom:p:a|*"]
    # Glob characters in a name are matched literally.
    assert keys.connection_patterns("p:a*")[0] == r"prod:cooldown:p:a\*|*"
