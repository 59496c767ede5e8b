"""Policies and request shaping, through the running stack, for every client format (the official
SDKs: openai chat and responses, anthropic, google-genai, ollama), each against an upstream of
its own family (passthrough) and of another (translated):
- a rewrite policy (A -> B): the upstream is asked for B; the answer names A, the model the
  client asked for (omniroute_edge/model_names.py: as the providers' APIs echo the request);
- a block policy: 403 in the caller's format (permission_error, code model_blocked);
- an allow-providers policy: a model of another provider is 403 (provider_not_allowed), a combo
  is served by its allowed member;
- the global system prompt: the upstream gets it once, in its own format's place for it
  (system message, Anthropic `system`, Gemini `systemInstruction`, Responses `instructions`),
  the prefix before the caller's own system prompt and the suffix after;
- each thinking-budget mode (passthrough, custom, auto, adaptive): the upstream gets the budget
  in its own field (reasoning_effort, reasoning.effort, thinking.budget_tokens,
  thinkingConfig.thinkingBudget, think)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

from omniroute.formats.canonical import budget_to_effort
from tests.e2e.format_clients import CLIENTS, Ask
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway, wait_for

pytestmark = pytest.mark.xdist_group("policies-shaping")

API_KEY = "sk-omni-policies-0123456789abcd"
TIMEOUT_S = 20.0
FAMILIES = {"myopenai": "openai", "myresponses": "openai-responses", "myanthropic": "anthropic",
            "mygemini": "gemini", "myollama": "ollama"}
# Each client format's own upstream (its answer passes through) and one that needs translating.
OWN = {"openai_chat": "myopenai", "openai_responses": "myresponses", "anthropic": "myanthropic",
       "gemini": "mygemini", "ollama": "myollama"}
OTHER = {"openai_chat": "myanthropic", "openai_responses": "mygemini", "anthropic": "myopenai",
         "gemini": "myanthropic", "ollama": "mygemini"}
PAIRS = [(client, provider) for client in CLIENTS for provider in (OWN[client], OTHER[client])]
pairs = pytest.mark.parametrize(("client_name", "provider"), PAIRS,
                                ids=[f"{c}-to-{FAMILIES[p]}" for c, p in PAIRS])
clients = pytest.mark.parametrize("client_name", list(CLIENTS))


@pytest.fixture(scope="module")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = mock_upstream.url
    urls = {"openai": f"{base}/v1", "openai-responses": f"{base}/v1", "anthropic": f"{base}/v1",
            "gemini": f"{base}/v1beta", "ollama": base}
    config = {
        "providers": [{"id": pid, "type": family, "base_url": urls[family], "models": ["mock-text"],
                       "connections": [{"name": "main", "api_key": f"{pid}-upstream"}]}
                      for pid, family in FAMILIES.items()],
        "combos": [{"name": "pol-combo", "models": ["myanthropic/mock-text", "myopenai/mock-text"]},
                   {"name": "pol-anthropic", "models": ["myanthropic/mock-text"]}],
        "keys": [{"name": "policies", "key": API_KEY}],
    }
    with running_gateway(tmp_path_factory.mktemp("policies"), config, api_key=API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    client = gateway.admin_client()
    yield client
    client.close()


# --- each SDK, asked once: the answer's model and text, or its error -----------------------------

def ask(gateway: Gateway, client_name: str, model: str, text: str, system: str | None = None,
        parts: bool = False) -> tuple[str, str]:
    """One whole answer through the client's SDK: (the model it names, its text). With `parts`,
    the system prompt is sent as content parts where the format has them (Anthropic's system
    blocks, with cache_control; a Responses developer item; Gemini's Content)."""
    url, key = gateway.url, gateway.api_key
    if client_name in ("openai_chat", "openai_responses"):
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT_S)
        if client_name == "openai_chat":
            content: Any = [{"type": "text", "text": system}] if parts else system
            system_turn = [{"role": "system", "content": content}] if system else []
            chat = sdk.chat.completions.create(model=model, messages=[
                *system_turn, {"role": "user", "content": text}])  # type: ignore[list-item]
            return chat.model, chat.choices[0].message.content or ""
        if parts and system:
            response = sdk.responses.create(model=model, input=[
                {"role": "developer", "content": [{"type": "input_text", "text": system}]},
                {"role": "user", "content": text}])
            return response.model, response.output_text
        response = sdk.responses.create(model=model, input=text, instructions=system)
        return response.model, response.output_text
    if client_name == "anthropic":
        claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=TIMEOUT_S)
        blocks = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        extra: dict[str, Any] = {"system": blocks if parts else system} if system else {}
        message = claude.messages.create(model=model, max_tokens=256, messages=[
            {"role": "user", "content": text}], **extra)
        return message.model, "".join(b.text for b in message.content if b.type == "text")
    if client_name == "gemini":
        google = genai.Client(api_key=key, http_options=gt.HttpOptions(
            base_url=url, api_version="v1beta", timeout=int(TIMEOUT_S * 1000)))
        instruction: Any = gt.Content(parts=[gt.Part(text=system)]) if parts and system else system
        answer = google.models.generate_content(model=model, contents=text,
                                                config=gt.GenerateContentConfig(system_instruction=instruction))
        return answer.model_version or "", answer.text or ""
    local = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S)
    system_turn = [{"role": "system", "content": system}] if system else []
    reply = local.chat(model=model, messages=[*system_turn, {"role": "user", "content": text}], stream=False)
    return reply.model or "", reply.message.content or ""


def refusal(gateway: Gateway, client_name: str, model: str) -> tuple[int, str, str]:
    """The error the SDK raised: (status, the format's error kind, message)."""
    try:
        ask(gateway, client_name, model, "hello")
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        body: Any = exc.body
        error = body.get("error", body) if isinstance(body, dict) else {}
        kind = f"{error.get('type')}/{error.get('code')}" if client_name.startswith("openai") \
            else str(error.get("type"))
        return exc.status_code, kind, str(error.get("message"))
    except genai_errors.APIError as exc:
        return exc.code, str(exc.status), str(exc.message)
    except ollama.ResponseError as exc:
        return exc.status_code, "", exc.error
    raise AssertionError(f"{client_name}: {model} was answered")


def streamed_status(gateway: Gateway, client_name: str, model: str) -> int | None:
    """The status a streamed request was refused with (the refusal comes before the stream)."""
    client = CLIENTS[client_name](gateway.url, gateway.api_key)
    try:
        client.chat(model, [Ask("hello")], True)
    except Exception as exc:  # each SDK raises its own type; status_of reads it
        return client.status_of(exc)
    raise AssertionError(f"{client_name}: {model} was streamed")


# The documented refusal, per format: OpenAI's type and code, Anthropic's type, Google's status.
FORBIDDEN = {"openai_chat": "permission_error/{code}", "openai_responses": "permission_error/{code}",
             "anthropic": "permission_error", "gemini": "PERMISSION_DENIED", "ollama": ""}


def assert_refused(gateway: Gateway, client_name: str, model: str, code: str, says: str) -> None:
    status, kind, message = refusal(gateway, client_name, model)
    assert (status, kind) == (403, FORBIDDEN[client_name].format(code=code)), message
    assert says in message


# --- what the upstream received -------------------------------------------------------------------

def received(mock: MockServer, family: str, marker: str) -> Any:
    """The one request of `family` whose body carries `marker`."""
    found = [r for r in mock.requests(family=family) if marker in r.raw_body.decode()]
    assert len(found) == 1, f"{family} received {len(found)} requests carrying {marker}"
    return found[0]


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


def system_text(family: str, body: dict[str, Any]) -> str:
    """Everything the upstream was given as system instructions, in its format's own place."""
    if family == "anthropic":
        return "\n".join(_texts(body.get("system")))
    if family == "gemini":
        return "\n".join(_texts((body.get("systemInstruction") or {}).get("parts")))
    turns = body.get("input") if family == "openai-responses" else body.get("messages")
    parts = [str(body.get("instructions") or "")] if family == "openai-responses" else []
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, dict) and turn.get("role") in ("system", "developer"):
            parts += _texts(turn.get("content"))
    return "\n".join(p for p in parts if p)


def settle(check: Callable[[], bool]) -> None:
    """Until the routers have loaded the change (config.changed reaches them in a moment)."""
    wait_for(check, timeout=20, interval=0.2)


def put(admin: httpx.Client, path: str, body: dict[str, Any]) -> None:
    saved = admin.put(path, json=body)
    assert saved.status_code == 200, saved.text


def openai_status(gateway: Gateway, model: str) -> int:
    return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=TIMEOUT_S,
                      headers={"Authorization": f"Bearer {gateway.api_key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "probe"}]}).status_code


@pytest.fixture
def policy(admin: httpx.Client, gateway: Gateway) -> Iterator[Callable[[dict[str, Any], str, int], None]]:
    """Saves a policy, then waits until a probe model answers the expected status; removed after."""
    names: list[str] = []

    def save(spec: dict[str, Any], probe: str, status: int) -> None:
        made = admin.post("/api/policies", json=spec)
        assert made.status_code == 200, made.text
        names.append(spec["name"])
        settle(lambda: openai_status(gateway, probe) == status)

    yield save
    for name in names:
        assert admin.delete(f"/api/policies/{name}").status_code == 200
    settle(lambda: all(openai_status(gateway, m) == 200 for m in ("myopenai/mock-text", "myanthropic/mock-text")))


# --- policies ----------------------------------------------------------------------------------

@pairs
def test_a_rewrite_asks_the_upstream_for_the_new_model(gateway: Gateway, mock_upstream: MockServer, policy: Any,
                                                       client_name: str, provider: str) -> None:
    requested = f"legacy-{client_name}-{provider}"
    policy({"name": "rewrites", "rewrite": {requested: f"{provider}/mock-echo"}}, requested, 200)
    marker = f"rewrite-{uuid.uuid4().hex}"
    model, text = ask(gateway, client_name, requested, marker)
    assert text == marker  # mock-echo answered: the rewritten model
    sent = received(mock_upstream, FAMILIES[provider], marker)
    upstream_model = sent.path.rsplit("/", 1)[-1].split(":")[0] if FAMILIES[provider] == "gemini" \
        else sent.body["model"]
    assert upstream_model == "mock-echo"
    assert model.removeprefix("models/") == requested  # the answer names what the client asked for


@clients
def test_a_blocked_model_is_refused_in_the_callers_format(gateway: Gateway, mock_upstream: MockServer,
                                                          policy: Any, client_name: str) -> None:
    policy({"name": "blocks", "block_models": ["myopenai/*", "myanthropic/mock-text"]},
           "myopenai/mock-text", 403)
    for model in ("myopenai/mock-text", "myanthropic/mock-text", "pol-combo"):  # a combo with one
        assert_refused(gateway, client_name, model, "model_blocked", "blocked by the policy 'blocks'")
    assert streamed_status(gateway, client_name, "myopenai/mock-text") == 403
    model, text = ask(gateway, client_name, "mygemini/mock-text", "still served")
    assert text == "Hello from mock gemini! This is a scripted reply."


@clients
def test_a_provider_not_allowed_is_refused_and_a_combo_skips_it(gateway: Gateway, mock_upstream: MockServer,
                                                                policy: Any, client_name: str) -> None:
    allowed = [pid for pid in FAMILIES if pid != "myanthropic"]
    policy({"name": "allowed", "allow_providers": allowed}, "myanthropic/mock-text", 403)
    assert_refused(gateway, client_name, "myanthropic/mock-text", "provider_not_allowed",
                   "providers that a policy does not allow")
    assert streamed_status(gateway, client_name, "myanthropic/mock-text") == 403
    marker = f"combo-{uuid.uuid4().hex}"
    model, text = ask(gateway, client_name, "pol-combo", marker)
    assert text == "Hello from mock openai! This is a scripted reply."
    assert model.removeprefix("models/") == "pol-combo"
    received(mock_upstream, "openai", marker)
    assert not [r for r in mock_upstream.requests(family="anthropic") if marker in r.raw_body.decode()]


@clients
def test_a_combo_of_providers_not_allowed_falls_back_to_the_fallback_model(
        gateway: Gateway, admin: httpx.Client, mock_upstream: MockServer, policy: Any, client_name: str) -> None:
    allowed = [pid for pid in FAMILIES if pid != "myanthropic"]
    policy({"name": "allowed", "allow_providers": allowed}, "pol-anthropic", 403)
    assert_refused(gateway, client_name, "pol-anthropic", "provider_not_allowed", "does not allow")
    put(admin, "/api/routing/fallback-model", {"model": "myopenai/mock-text"})
    try:
        settle(lambda: openai_status(gateway, "pol-anthropic") == 200)
        marker = f"fallback-{uuid.uuid4().hex}"
        _, text = ask(gateway, client_name, "pol-anthropic", marker)
        assert text == "Hello from mock openai! This is a scripted reply."
        received(mock_upstream, "openai", marker)
    finally:
        put(admin, "/api/routing/fallback-model", {"model": None})
        settle(lambda: openai_status(gateway, "pol-anthropic") == 403)


# --- request shaping: the global system prompt ----------------------------------------------------

@pytest.fixture
def system_prompt(admin: httpx.Client, gateway: Gateway, mock_upstream: MockServer) -> Iterator[tuple[str, str]]:
    prefix, suffix = f"PREFIX-{uuid.uuid4().hex}", f"SUFFIX-{uuid.uuid4().hex}"
    put(admin, "/api/settings/system-prompt", {"enabled": True, "prefix": prefix, "suffix": suffix})

    def shaped() -> bool:
        marker = uuid.uuid4().hex
        ask(gateway, "openai_chat", "myopenai/mock-text", marker)
        return prefix in received(mock_upstream, "openai", marker).raw_body.decode()

    settle(shaped)
    yield prefix, suffix
    put(admin, "/api/settings/system-prompt", {"enabled": False, "prefix": "", "suffix": ""})
    settle(lambda: not shaped())


@pairs
@pytest.mark.parametrize("own_system", ["", "text", "parts"], ids=["alone", "with-callers", "with-callers-parts"])
def test_the_global_system_prompt_reaches_the_upstream_once(gateway: Gateway, mock_upstream: MockServer,
                                                            system_prompt: tuple[str, str], client_name: str,
                                                            provider: str, own_system: str) -> None:
    prefix, suffix = system_prompt
    marker, own = f"ask-{uuid.uuid4().hex}", f"OWN-{uuid.uuid4().hex}"
    ask(gateway, client_name, f"{provider}/mock-text", marker, system=own if own_system else None,
        parts=own_system == "parts")
    family = FAMILIES[provider]
    sent = received(mock_upstream, family, marker)
    system = system_text(family, sent.body)
    raw = sent.raw_body.decode()
    assert raw.count(prefix) == 1 and raw.count(suffix) == 1, raw  # once, and only as a system text
    assert system.index(prefix) < system.index(suffix)
    if own_system:
        assert raw.count(own) == 1
        assert system.index(prefix) < system.index(own) < system.index(suffix)
    assert marker not in system


# --- request shaping: each thinking-budget mode -----------------------------------------------------

# What each client's reasoning request means (tests/e2e/format_clients.py, reasoning=True):
# OpenAI chat and Responses an effort ("low"), Ollama think=true ("medium"); Anthropic and Gemini
# an exact budget of 1024, which only `custom` overrides.
ASKED = {"openai_chat": (2048, "low"), "openai_responses": (2048, "low"), "anthropic": (1024, "low"),
         "gemini": (1024, "low"), "ollama": (8192, "medium")}
EXACT = {"anthropic", "gemini"}
BUDGET = 5000
LONG_PROMPT_CHARS = 4000   # adaptive: chars // 2 = 2000 tokens of room (within the cap)


def expected(mode: str, client_name: str) -> tuple[int, str]:
    """The budget and effort the shaped request carries."""
    if mode == "custom" or (mode == "auto" and client_name not in EXACT):
        return BUDGET, str(budget_to_effort(BUDGET))
    if mode == "adaptive" and client_name not in EXACT:
        budget = min(BUDGET, max(1024, LONG_PROMPT_CHARS // 2))
        return budget, str(budget_to_effort(budget))
    return ASKED[client_name]


def upstream_thinking(family: str, body: dict[str, Any]) -> Any:
    """The field that carries the thinking budget (or its effort) in the upstream's format."""
    if family == "openai":
        return body.get("reasoning_effort")
    if family == "openai-responses":
        return (body.get("reasoning") or {}).get("effort")
    if family == "anthropic":
        return (body.get("thinking") or {}).get("budget_tokens")
    if family == "gemini":  # the API takes both spellings; google-genai sends snake_case
        config = body.get("generationConfig") or body.get("generation_config") or {}
        thinking = config.get("thinkingConfig") or config.get("thinking_config") or {}
        return thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    return body.get("think")


def in_family(family: str, client_name: str, budget: int, effort: str) -> Any:
    if family in ("openai", "openai-responses"):
        return effort
    if family == "anthropic":  # Anthropic needs 1024 <= budget < max_tokens (the Anthropic client's 2048)
        return min(max(budget, 1024), 2047) if client_name == "anthropic" else max(budget, 1024)
    if family == "gemini":
        return budget
    return effort != "none"  # Ollama's think is a switch


@pytest.fixture(params=["passthrough", "custom", "auto", "adaptive"])
def thinking_mode(request: pytest.FixtureRequest, admin: httpx.Client, gateway: Gateway,
                  mock_upstream: MockServer) -> Iterator[str]:
    mode: str = request.param
    put(admin, "/api/settings/thinking-budget", {"mode": mode, "budget_tokens": BUDGET})
    settle(lambda: admin.get("/api/settings/thinking-budget").json()["mode"] == mode)

    def effort_seen() -> Any:
        marker = uuid.uuid4().hex
        CLIENTS["openai_chat"](gateway.url, gateway.api_key).chat(
            "myopenai/mock-text", [Ask(marker)], False, reasoning=True)
        return received(mock_upstream, "openai", marker).body.get("reasoning_effort")

    settle(lambda: effort_seen() == expected(mode, "openai_chat")[1])
    yield mode
    put(admin, "/api/settings/thinking-budget", {"mode": "passthrough", "budget_tokens": 8192})
    settle(lambda: effort_seen() == "low")


@pairs
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_each_thinking_mode_reaches_the_upstream_in_its_field(gateway: Gateway, mock_upstream: MockServer,
                                                              thinking_mode: str, client_name: str,
                                                              provider: str, stream: bool) -> None:
    marker = f"think-{uuid.uuid4().hex}"
    words = marker + " " + "x" * (LONG_PROMPT_CHARS - len(marker) - 1)
    result = CLIENTS[client_name](gateway.url, gateway.api_key).chat(
        f"{provider}/mock-text", [Ask(words)], stream, reasoning=True)
    assert result.text.startswith("Hello from mock")
    family = FAMILIES[provider]
    body = received(mock_upstream, family, marker).body
    budget, effort = expected(thinking_mode, client_name)
    assert upstream_thinking(family, body) == in_family(family, client_name, budget, effort), body
    if thinking_mode == "custom" and client_name != "anthropic":
        # custom sets the budget even when the caller asked for no reasoning. (Not for the Anthropic
        # client: its max_tokens of 512 leaves no room, Anthropic needs 1024 <= budget < max_tokens.)
        marker = f"plain-{uuid.uuid4().hex}"
        CLIENTS[client_name](gateway.url, gateway.api_key).chat(f"{provider}/mock-text", [Ask(marker)], stream)
        body = received(mock_upstream, family, marker).body
        assert upstream_thinking(family, body) == in_family(family, client_name, BUDGET,
                                                            str(budget_to_effort(BUDGET))), body
    if thinking_mode == "custom" and client_name == "anthropic":
        # Claude's own thinking modes give way to the custom budget too (adaptive has no budget).
        for kind in ("adaptive", "disabled"):
            marker = f"{kind}-{uuid.uuid4().hex}"
            claude = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.api_key, max_retries=0,
                                         timeout=TIMEOUT_S)
            thinking: Any = {"type": kind}
            claude.messages.create(model=f"{provider}/mock-text", max_tokens=8192, thinking=thinking,
                                   messages=[{"role": "user", "content": marker}])
            body = received(mock_upstream, family, marker).body
            assert upstream_thinking(family, body) == in_family(family, "", BUDGET,
                                                                str(budget_to_effort(BUDGET))), body
