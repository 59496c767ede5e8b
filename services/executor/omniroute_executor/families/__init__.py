"""Provider families: how to reach one kind of upstream API. One module per family."""

from __future__ import annotations

from omniroute_executor.families.base import Family
from omniroute_executor.families.openai import OPENAI

FAMILIES: dict[str, Family] = {family.name: family for family in (OPENAI,)}
