"""What every family shares: scenarios, the scripted answer, token counting, ids, the recorder.

A scenario is picked by the requested model name (``mock-tool``, ``provider/mock-tool``,
``mock-tool:latest`` …) or forced with the ``x-mock-scenario`` request header. The answer is a
provider-neutral :class:`Script` (reasoning pieces, text pieces, tool calls, finish reason, usage)
that each family renders in its own wire format.

Usage is deterministic:

* input tokens  = whitespace-separated words in the prompt's text fields (at least 1);
* output tokens = words in the reasoning and the text, plus the streamed pieces of each tool call's
  arguments (4 per call);
* reasoning tokens = words in the reasoning;
* cached tokens = input tokens // 2 for ``mock-cached``, else 0.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Finish = Literal["stop", "length", "tool_calls", "content_filter"]

#: Scenario names (the part after ``mock-``). ``mock-<status>`` (e.g. ``mock-429``) is an error
#: answered before the first byte with that HTTP status.
SCENARIOS: tuple[str, ...] = (
    "text",
    "echo",
    "tool",
    "parallel-tools",
    "reasoning-content",
    "reasoning",
    "json",
    "length",
    "filter",
    "cached",
    "slow",
    "paced",
    "error-mid",
    "drop",
    "agent",
)
#: The models every list endpoint advertises.
MODEL_NAMES: tuple[str, ...] = tuple(f"mock-{s}" for s in SCENARIOS) + tuple(
    f"mock-{c}" for c in (400, 401, 429, 500, 503, 529)
)

DEFAULT_SLOW_MS = 1000
DEFAULT_SLOW_CHUNK_MS = 100
#: ``mock-paced[-<n>]``: n text chunks (default 5), one every PACED_CHUNK_MS.
DEFAULT_PACED_PIECES = 5
PACED_CHUNK_MS = 300
#: How a paced text piece reads: ``[<token>#<index>]``; the token is unique per request.
PACED_PIECE = re.compile(r"\[(pace[0-9a-f]+)#(\d+)\]")

_WORD = re.compile(r"\s*\S+")
_TEXT_KEYS = frozenset({"content", "text", "system", "instructions", "input", "prompt"})


@dataclass(frozen=True)
class Scenario:
    name: str  # one of SCENARIOS, or "error"
    status: int = 0  # for "error": the HTTP status answered before the first byte
    delay_ms: int = 0  # before the first byte
    chunk_delay_ms: int = 0  # between two stream frames (paced: between two text pieces)
    pieces: int = 0  # paced: how many text pieces


#: Scenarios scripted by a test in this process, by the caller's credential (the bearer token):
#: e.g. ``SCRIPTED["sk-a"] = "mock-503"`` fails that account's calls until removed. Between the
#: ``x-mock-scenario`` header and the model name in precedence.
SCRIPTED: dict[str, str] = {}
#: Model lists scripted the same way: ``SCRIPTED_MODELS["sk-a"] = ["x", "y"]`` makes the OpenAI
#: ``GET /v1/models`` list those for bearer ``sk-a``; an error in ``SCRIPTED`` fails the listing too.
SCRIPTED_MODELS: dict[str, list[str]] = {}


def credential(headers: Any) -> str:
    """The bearer token a request carries ("" without one): what SCRIPTED is keyed by."""
    return str(headers.get("authorization") or "").removeprefix("Bearer ")


def pick_scenario(model: str, headers: Any) -> Scenario:
    """Choose the scenario from the model name, overridden by ``x-mock-scenario``.

    Delays come from ``mock-slow[-<ms>]`` or the ``x-mock-delay-ms`` / ``x-mock-chunk-delay-ms``
    headers (any scenario); ``mock-paced[-<n>]`` sends n text pieces PACED_CHUNK_MS apart.
    """
    raw = headers.get("x-mock-scenario") or SCRIPTED.get(credential(headers)) or model or ""
    name = raw.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    rest = name[len("mock-") :] if name.startswith("mock-") else ""
    scenario = Scenario("text")
    m = re.match(r"(\d{3})(?:$|-)", rest)
    if m and 400 <= int(m.group(1)) <= 599:
        scenario = Scenario("error", status=int(m.group(1)))
    else:
        for key in sorted(SCENARIOS, key=len, reverse=True):
            if rest == key or rest.startswith(key + "-"):
                scenario = Scenario(key)
                if key == "slow":
                    tail = rest[len(key) + 1 :]
                    delay = int(tail) if tail.isdigit() else DEFAULT_SLOW_MS
                    scenario = Scenario(key, delay_ms=delay, chunk_delay_ms=DEFAULT_SLOW_CHUNK_MS)
                if key == "paced":
                    tail = rest[len(key) + 1 :]
                    pieces = int(tail) if tail.isdigit() else DEFAULT_PACED_PIECES
                    scenario = Scenario(key, chunk_delay_ms=PACED_CHUNK_MS, pieces=pieces)
                break
    delay_ms = _int_header(headers, "x-mock-delay-ms", scenario.delay_ms)
    chunk_ms = _int_header(headers, "x-mock-chunk-delay-ms", scenario.chunk_delay_ms)
    return Scenario(scenario.name, scenario.status, delay_ms, chunk_ms, scenario.pieces)


def _int_header(headers: Any, name: str, default: int) -> int:
    value = headers.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# --------------------------------------------------------------------------- request inspection


def count_words(text: str) -> int:
    return len(text.split())


def prompt_words(body: Any) -> int:
    """Words in every text field of the prompt (messages, system, instructions, parts …)."""
    total = 0

    def walk(node: Any, key: str | None) -> None:
        nonlocal total
        if isinstance(node, str):
            if key in _TEXT_KEYS:
                total += count_words(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    if isinstance(body, dict):
        for k, v in body.items():
            if k in ("messages", "contents", "system", "systemInstruction", "instructions", "input"):
                walk(v, "content" if isinstance(v, str) else k)
    return max(total, 1)


def last_user_text(body: Any) -> str:
    """The text of the last user turn, whatever the family's shape."""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("input"), str):
        return str(body["input"])
    turns = body.get("messages") or body.get("contents") or body.get("input") or []
    if not isinstance(turns, list):
        return ""
    for turn in reversed(turns):
        if isinstance(turn, dict) and turn.get("role", "user") == "user":
            return _text_of(turn.get("content", turn.get("parts")))
    return ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text")) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def tool_names(body: Any) -> list[str]:
    """Declared function names, whatever the family's shape."""
    names: list[str] = []
    tools = body.get("tools") if isinstance(body, dict) else None
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict) and tool["function"].get("name"):
            names.append(str(tool["function"]["name"]))
        elif tool.get("name"):
            names.append(str(tool["name"]))
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            if isinstance(decl, dict) and decl.get("name"):
                names.append(str(decl["name"]))
    return names


def max_output_tokens(body: Any) -> int | None:
    if not isinstance(body, dict):
        return None
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        if isinstance(body.get(key), int):
            return int(body[key])
    gen = body.get("generationConfig") or body.get("generation_config") or {}
    if isinstance(gen, dict) and isinstance(gen.get("maxOutputTokens"), int):
        return int(gen["maxOutputTokens"])
    options = body.get("options") or {}
    if (
        isinstance(options, dict)
        and isinstance(options.get("num_predict"), int)
        and options["num_predict"] > 0
    ):
        return int(options["num_predict"])
    return None


# --------------------------------------------------------------------------- the script


def split_words(text: str) -> list[str]:
    """``"Hello from mock"`` -> ``["Hello", " from", " mock"]`` (joins back to the text)."""
    pieces = _WORD.findall(text)
    return pieces or [text]


def split_json(text: str, parts: int = 4) -> list[str]:
    """Cut a JSON string into ``parts`` pieces of similar size (as providers stream arguments)."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    index: int = 0

    @property
    def json(self) -> str:
        return orjson.dumps(self.arguments).decode()

    @property
    def pieces(self) -> list[str]:
        return split_json(self.json)


@dataclass
class Script:
    """A provider-neutral answer; each family renders it in its own wire format."""

    family: str
    scenario: Scenario
    model: str
    input_tokens: int
    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    tools: list[ToolCall] = field(default_factory=list)
    finish: Finish = "stop"
    cached_tokens: int = 0

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @property
    def full_reasoning(self) -> str:
        return "".join(self.reasoning)

    @property
    def reasoning_tokens(self) -> int:
        return count_words(self.full_reasoning)

    @property
    def output_tokens(self) -> int:
        return count_words(self.full_text) + self.reasoning_tokens + sum(len(t.pieces) for t in self.tools)

    @property
    def error_mid(self) -> bool:
        return self.scenario.name == "error-mid"

    @property
    def drop(self) -> bool:
        return self.scenario.name == "drop"

    @property
    def signature(self) -> str:
        """A deterministic opaque signature for the reasoning (Anthropic/Gemini style)."""
        digest = hashlib.sha256(self.full_reasoning.encode()).digest()
        return base64.b64encode(digest * 2).decode()


#: ``mock-agent``: the file a coding CLI is asked to read, and the token the test wrote into it.
AGENT_FILE = "omniroute-cli-check.txt"
AGENT_TOKEN = re.compile(r"omniroute-check-[0-9a-f]{8,}")
AGENT_DONE = "The check file says"
#: The first declared tool that can show a file, and its arguments, for each coding CLI's tool set
#: (Claude Code's Bash, Codex's exec_command / shell, Gemini CLI's run_shell_command / read_file).
AGENT_TOOLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Bash", {"command": f"cat {AGENT_FILE}", "description": "Show the check file"}),
    ("exec_command", {"cmd": f"cat {AGENT_FILE}"}),
    ("shell_command", {"command": f"cat {AGENT_FILE}"}),
    ("shell", {"command": ["cat", AGENT_FILE]}),
    ("run_shell_command", {"command": f"cat {AGENT_FILE}"}),
    ("read_file", {"file_path": AGENT_FILE}),
)


def tool_result_in_last_turn(body: Any) -> Any:
    """The tool results that the request's newest turn sends back (None when it sends none), in
    any family's shape: Anthropic ``tool_result`` blocks, OpenAI / Ollama ``tool`` messages,
    Responses ``function_call_output`` items, Gemini ``functionResponse`` parts."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("input"), list):   # Responses: outputs after the last user message
        outputs: list[Any] = []
        for item in reversed(body["input"]):
            if not isinstance(item, dict):
                continue
            if item.get("type", "message") == "message" and item.get("role") == "user":
                break
            if str(item.get("type", "")).endswith("call_output"):
                outputs.append(item.get("output"))
        return outputs or None
    turns = body.get("messages") or body.get("contents") or []
    if not isinstance(turns, list) or not turns or not isinstance(turns[-1], dict):
        return None
    last = turns[-1]
    if last.get("role") == "tool":
        return last.get("content")
    content = last.get("content", last.get("parts"))
    if isinstance(content, list):
        found = [p for p in content if isinstance(p, dict)
                 and (p.get("type") == "tool_result" or "functionResponse" in p)]
        return found or None
    return None


def _agent_turn(s: Script, body: Any) -> None:
    """A coding CLI's turn: a tool call that shows AGENT_FILE, then, once the tool's result comes
    back, a text quoting the token found in it (so the test sees that the tool really ran)."""
    result = tool_result_in_last_turn(body)
    if result is not None:
        found = AGENT_TOKEN.search(orjson.dumps(result).decode())
        s.text = split_words(f"{AGENT_DONE} {found.group(0)}." if found else
                             "The tool ran, but its result holds no check token.")
        return
    declared = tool_names(body)
    for name, arguments in AGENT_TOOLS:
        if name in declared:
            s.tools = [ToolCall(name, arguments)]
            s.finish = "tool_calls"
            return
    # A side request without tools (a title, a topic): a short text.
    s.text = split_words("OmniRoute CLI check")


REASONING_TEXT = "Let me think. The user wants a greeting, so a short friendly hello will do."


def build_script(family: str, scenario: Scenario, model: str, body: Any) -> Script:
    """The answer for ``scenario``; ``family`` appears in the text so tests see who answered."""
    s = Script(family=family, scenario=scenario, model=model, input_tokens=prompt_words(body))
    names = tool_names(body) or ["get_weather"]
    name = scenario.name
    if name == "agent":
        _agent_turn(s, body)
    elif name == "tool":
        s.tools = [ToolCall(names[0], {"city": "Paris", "unit": "celsius"})]
        s.finish = "tool_calls"
    elif name == "parallel-tools":
        s.tools = [
            ToolCall(names[0], {"city": "Paris"}, 0),
            ToolCall(names[1 % len(names)], {"city": "Tokyo"}, 1),
        ]
        s.finish = "tool_calls"
    elif name in ("reasoning", "reasoning-content"):
        s.reasoning = split_words(REASONING_TEXT)
        s.text = split_words(f"Hello from mock {family} after thinking!")
    elif name == "json":
        s.text = split_words(orjson.dumps({"name": "mock", "family": family, "ok": True}).decode())
    elif name == "echo":
        s.text = split_words(last_user_text(body) or "(empty)")
    elif name == "filter":
        s.text = split_words("I cannot")
        s.finish = "content_filter"
    elif name == "paced":
        token = new_id("pace", 16)
        s.text = [f"[{token}#{i}]" for i in range(scenario.pieces)]
    else:
        s.text = split_words(f"Hello from mock {family}! This is a scripted reply.")
        if name == "length":
            limit = max_output_tokens(body)
            s.text = s.text[: limit if limit is not None and limit < 3 else 3]
            s.finish = "length"
        if name == "cached":
            s.cached_tokens = s.input_tokens // 2
    limit = max_output_tokens(body)
    if limit is not None and limit > 0 and not s.tools and len(s.text) > limit and s.finish == "stop":
        s.text = s.text[:limit]
        s.finish = "length"
    return s


# --------------------------------------------------------------------------- helpers


_counter = itertools.count(1)


def new_id(prefix: str, length: int = 24) -> str:
    """A unique id in the provider's style, e.g. ``chatcmpl-…``, ``msg_…``, ``req_…``."""
    seed = f"{time.time_ns()}-{next(_counter)}".encode()
    return prefix + hashlib.sha1(seed).hexdigest()[:length]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# --------------------------------------------------------------------------- paced send times


class SendTimes:
    """When each text piece of a ``mock-paced`` stream was handed to the server to send
    (``time.time()``, taken just before the write, so never later than the send), by the
    piece's token and index. A test reads it to tell whether its client received piece i before
    the mock sent piece i+1. Thread-safe; one per process (tokens are unique)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, dict[int, float]] = {}

    def note(self, token: str, index: int) -> None:
        with self._lock:
            self._times.setdefault(token, {})[index] = time.time()

    def of(self, token: str) -> dict[int, float]:
        with self._lock:
            return dict(self._times.get(token, {}))


SEND_TIMES = SendTimes()


# --------------------------------------------------------------------------- the recorder


@dataclass
class RecordedRequest:
    seq: int
    family: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    time: float

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "family": self.family,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "raw_body": self.raw_body.decode("utf-8", "replace"),
            "time": self.time,
        }


class Recorder:
    """Every request a mock received, in order. Thread-safe (the server runs in its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        family: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        raw_body: bytes,
    ) -> RecordedRequest:
        with self._lock:
            item = RecordedRequest(
                next(self._seq), family, method, path, query, headers, body, raw_body, time.time()
            )
            self._items.append(item)
            return item

    def all(self, *, family: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only those of ``family`` or whose path contains ``path``."""
        with self._lock:
            items = list(self._items)
        return [
            r for r in items if (family is None or r.family == family) and (path is None or path in r.path)
        ]

    def last(self, *, family: str | None = None, path: str | None = None) -> RecordedRequest:
        items = self.all(family=family, path=path)
        if not items:
            raise LookupError(f"no recorded request (family={family!r}, path={path!r})")
        return items[-1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
