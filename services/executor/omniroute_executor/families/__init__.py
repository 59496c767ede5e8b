"""Provider families: how to reach one kind of upstream API. One module per family."""

from __future__ import annotations

from omniroute_executor.families.anthropic import ANTHROPIC
from omniroute_executor.families.base import Family
from omniroute_executor.families.gemini import GEMINI
from omniroute_executor.families.gemini_code_assist import GEMINI_CODE_ASSIST
from omniroute_executor.families.ollama import OLLAMA
from omniroute_executor.families.openai import OPENAI
from omniroute_executor.families.openai_responses import OPENAI_RESPONSES

FAMILIES: dict[str, Family] = {family.name: family
                               for family in (OPENAI, OPENAI_RESPONSES, ANTHROPIC, GEMINI, GEMINI_CODE_ASSIST,
                                              OLLAMA)}
# Families with no chat API: only their operations (transcription) are served (operations/).
OPERATION_ONLY = frozenset({"deepgram", "assemblyai"})
