"""A mock OAuth 2.0 server, plus API endpoints that accept only its live tokens.

What a real provider insists on is a :class:`Profile` (the subscription providers' ones are in
``oauth_presets.py``): its client id, the token endpoint's body (form or JSON), `state` in the
code exchange, PKCE in the device flow, tokens that never expire, an id_token with claims, and the
headers every API call must carry. The default profile accepts any well-formed OAuth 2.0 client.

- ``GET /authorize`` (response_type=code, client_id, redirect_uri, state, code_challenge,
  code_challenge_method=S256) → 302 to ``redirect_uri?code=…&state=…`` (approves at once).
- ``POST /token`` (form): ``authorization_code`` (checks the PKCE verifier and redirect_uri),
  ``refresh_token`` (rotates the refresh token: the old one stops working), and
  ``urn:ietf:params:oauth:grant-type:device_code`` (``authorization_pending`` until approved).
- ``POST /device/code`` → device_code, user_code, verification_uri, interval, expires_in;
  ``POST /device/approve`` ``{"user_code"}`` approves it (what the user would do in a browser).
- ``POST /v1/chat/completions`` and ``/chat/completions`` (OpenAI chat), ``/v1/messages``
  (Anthropic), ``/backend-api/codex/responses`` (OpenAI Responses): 401 unless ``Authorization:
  Bearer <a live access token>``, 400 when a header of the profile is missing or wrong or the body
  breaks the profile's rules (Claude Code's system prompt; the Codex backend's instructions, store,
  stream, no max_output_tokens), then that family's mock answers (expired or revoked tokens are
  refused like a provider would).
- Google's Code Assist (Gemini CLI): ``POST /v1internal:loadCodeAssist`` (no project until
  onboarded), ``:onboardUser`` (a long-running operation, done on the second call, with the
  project), ``:generateContent`` and ``:streamGenerateContent?alt=sse`` ({"model", "project",
  "request"} in, {"response", "traceId"} out; 403 for another project).
- Test controls: ``POST /_oauth/config`` ``{"expires_in", "fail_refresh", "refresh_delay_ms"}``,
  ``POST /_oauth/revoke`` (every access token), ``GET /_oauth/stats`` → ``{"refreshes", "issued"}``,
  ``POST /_oauth/introspect`` (form ``token``) → ``{"active"}`` (for resource servers in another
  process, such as the MCP tool server mock).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from . import anthropic, openai_chat, openai_responses
from .common import Recorder
from .serving import json_response, receive


@dataclass
class Profile:
    """What one provider's OAuth and API servers insist on."""

    client_id: str = ""                  # "" accepts any
    authorize_params: dict[str, str] = field(default_factory=dict)  # required on /authorize
    code_page: bool = False              # /authorize shows "code#state" to paste, no redirect
    token_format: str = "form"           # the token endpoint's body: form or json (else 400)
    exchange_state: bool = False         # the code exchange repeats the authorization's state
    device_pkce: bool = False            # device code needs an S256 challenge, the poll its verifier
    refresh_tokens: bool = True          # False: tokens without refresh token nor expires_in
    id_token_claims: dict[str, Any] | None = None  # issue an id_token with these claims
    api_headers: dict[str, str] = field(default_factory=dict)  # every API call ("" = any value)
    api_headers_absent: tuple[str, ...] = ()  # headers an API call must not carry
    api_header_flags: dict[str, str] = field(default_factory=dict)  # a flag a comma list must hold
    # Bodies: Anthropic's system prompt must start with this block (else 400 "Error"); fields
    # that must have these values, be present and non-empty, or be absent (else 400 {"detail"}).
    system_prefix: str = ""
    body_values: dict[str, Any] = field(default_factory=dict)
    body_required: tuple[str, ...] = ()
    body_refused: tuple[str, ...] = ()
    # Google's Code Assist (Gemini CLI): the project onboarding gives the account; every
    # generate call must name it in the wrapper ({"model", "project", "request"}).
    code_assist_project: str = ""


def _id_token(claims: dict[str, Any]) -> str:
    """An unsigned JWT (the gateway reads its claims, never verifies it)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


class OAuthState:
    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or Profile()
        self.lock = threading.Lock()
        self.codes: dict[str, dict[str, str]] = {}
        self.access: dict[str, float] = {}     # token → expires at
        self.refresh: set[str] = set()
        self.devices: dict[str, dict[str, Any]] = {}
        self.expires_in = 3600
        self.fail_refresh = False
        self.refresh_delay_ms = 0
        self.refreshes = 0
        self.counter = itertools.count(1)
        self.onboarded = False   # Code Assist: the account has its project
        self.onboard_calls = 0
        self.load_calls = 0

    def issue(self) -> dict[str, Any]:
        n = next(self.counter)
        access, refresh = f"oat-{n}-{secrets.token_hex(4)}", f"ort-{n}-{secrets.token_hex(4)}"
        if not self.profile.refresh_tokens:  # lives until revoked (GitHub's OAuth apps)
            with self.lock:
                self.access[access] = float("inf")
            return {"access_token": access, "token_type": "bearer", "scope": "read:user"}
        with self.lock:
            self.access[access] = time.time() + self.expires_in
            self.refresh.add(refresh)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": self.expires_in, "refresh_token": refresh, "scope": "chat"}
        if self.profile.id_token_claims is not None:
            answer["id_token"] = _id_token(self.profile.id_token_claims)
        return answer


def _error(code: str, description: str, status: int = 400) -> Response:
    return json_response({"error": code, "error_description": description}, status)


def _wrong_client(profile: Profile, client_id: str) -> Response | None:
    if profile.client_id and client_id != profile.client_id:
        return _error("invalid_client", f"unknown client_id {client_id!r}", 401)
    return None


async def _form(request: Request, profile: Profile) -> dict[str, str] | Response:
    """The token request's fields, in the one body format the provider reads."""
    raw = await request.body()
    is_json = request.headers.get("content-type", "").startswith("application/json")
    if is_json != (profile.token_format == "json"):
        return _error("invalid_request", f"the token endpoint reads {profile.token_format} bodies")
    if is_json:
        parsed = orjson.loads(raw)
        return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def authorize(request: Request) -> Response:
    q = request.query_params
    profile: Profile = request.app.state.oauth.profile
    if (q.get("response_type") != "code" or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")):
        return _error("invalid_request", "response_type=code with an S256 code_challenge is required")
    if (denied := _wrong_client(profile, q.get("client_id", ""))) is not None:
        return denied
    for name, value in profile.authorize_params.items():
        if q.get(name) != value:
            return _error("invalid_request", f"{name}={value} is required")
    code = secrets.token_urlsafe(12)
    request.app.state.oauth.codes[code] = {"challenge": q["code_challenge"],
                                           "redirect_uri": q.get("redirect_uri", ""),
                                           "client_id": q.get("client_id", ""), "state": q.get("state", "")}
    if profile.code_page:  # the user copies "code#state" from the page
        return PlainTextResponse(f"{code}#{q.get('state', '')}")
    back = urlencode({"code": code, "state": q.get("state", "")})
    return RedirectResponse(f"{q.get('redirect_uri')}?{back}", status_code=302)


async def token(request: Request) -> Response:
    state: OAuthState = request.app.state.oauth
    form = await _form(request, state.profile)
    if isinstance(form, Response):
        return form
    if (denied := _wrong_client(state.profile, form.get("client_id", ""))) is not None:
        return denied
    grant = form.get("grant_type")
    if grant == "authorization_code":
        entry = state.codes.pop(form.get("code", ""), None)
        if entry is None:
            return _error("invalid_grant", "unknown or used code")
        if _s256(form.get("code_verifier", "")) != entry["challenge"]:
            return _error("invalid_grant", "PKCE verification failed")
        if form.get("redirect_uri", "") != entry["redirect_uri"]:
            return _error("invalid_grant", "redirect_uri mismatch")
        if state.profile.exchange_state and form.get("state") != entry["state"]:
            return _error("invalid_grant", "state mismatch")
        return json_response(state.issue())
    if grant == "refresh_token":
        if state.refresh_delay_ms:
            await asyncio.sleep(state.refresh_delay_ms / 1000)
        with state.lock:
            state.refreshes += 1
            known = form.get("refresh_token", "") in state.refresh
            if known and not state.fail_refresh:
                state.refresh.discard(form["refresh_token"])  # rotation: single use
        if state.fail_refresh or not known:
            return _error("invalid_grant", "the refresh token is invalid or revoked")
        return json_response(state.issue())
    if grant == "urn:ietf:params:oauth:grant-type:device_code":
        device = state.devices.get(form.get("device_code", ""))
        if device is None:
            return _error("expired_token", "unknown device code")
        if device["challenge"] and _s256(form.get("code_verifier", "")) != device["challenge"]:
            return _error("invalid_grant", "PKCE verification failed")
        if not device["approved"]:
            return _error("authorization_pending", "the user has not approved yet")
        state.devices.pop(form["device_code"])
        return json_response(state.issue())
    return _error("unsupported_grant_type", f"grant_type {grant!r}")


async def device_code(request: Request) -> Response:
    state: OAuthState = request.app.state.oauth
    form = await _form(request, state.profile)
    if isinstance(form, Response):
        return form
    if (denied := _wrong_client(state.profile, form.get("client_id", ""))) is not None:
        return denied
    challenge = form.get("code_challenge", "")
    if state.profile.device_pkce and (not challenge or form.get("code_challenge_method") != "S256"):
        return _error("invalid_request", "an S256 code_challenge is required")
    code, user_code = secrets.token_urlsafe(16), secrets.token_hex(3).upper()
    state.devices[code] = {"user_code": user_code, "approved": False, "challenge": challenge}
    base = str(request.base_url).rstrip("/")
    return json_response({"device_code": code, "user_code": user_code, "verification_uri": f"{base}/device",
                          "verification_uri_complete": f"{base}/device?user_code={user_code}",
                          "interval": 1, "expires_in": 600})


async def device_approve(request: Request) -> Response:
    state: OAuthState = request.app.state.oauth
    user_code = (await request.json()).get("user_code")
    for device in state.devices.values():
        if device["user_code"] == user_code:
            device["approved"] = True
            return json_response({"approved": True})
    return _error("invalid_request", "unknown user code", 404)


def _refused(request: Request) -> Response | None:
    """401 without a live token, 400 without the profile's headers (or with a forbidden one)."""
    state: OAuthState = request.app.state.oauth
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
    expires = state.access.get(bearer)
    if expires is None or expires < time.time():
        return openai_chat.error_response(401, "Invalid or expired OAuth access token.")
    for name, value in state.profile.api_headers.items():
        got = request.headers.get(name)
        if not got or (value and got != value):
            return openai_chat.error_response(400, f"header {name}: {value or 'a value'!r} is required")
    for name in state.profile.api_headers_absent:
        if name in request.headers:
            return openai_chat.error_response(400, f"header {name} is not accepted with OAuth")
    for name, flag in state.profile.api_header_flags.items():
        if flag not in [f.strip() for f in request.headers.get(name, "").split(",")]:
            return openai_chat.error_response(400, f"header {name} must list {flag!r}")
    return None


async def _body(request: Request) -> dict[str, Any]:
    try:
        parsed = orjson.loads(await request.body())  # Starlette keeps it for the family mock
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _starts_with(system: Any, prefix: str) -> bool:
    """Anthropic's rule for OAuth tokens: the whole first block of a system list, or the start
    of a system string."""
    if isinstance(system, str):
        return system.startswith(prefix)
    return isinstance(system, list) and bool(system) and isinstance(system[0], dict) \
        and system[0].get("text") == prefix


async def _body_refused(request: Request) -> Response | None:
    profile: Profile = request.app.state.oauth.profile
    body = await _body(request)
    if profile.system_prefix and not _starts_with(body.get("system"), profile.system_prefix):
        return anthropic.error_response(400, "Error")  # what Anthropic says, no more
    for name, value in profile.body_values.items():
        if body.get(name) != value:
            return json_response({"detail": f"{name.capitalize()} must be set to {orjson.dumps(value).decode()}"}, 400)
    for name in profile.body_required:
        if not body.get(name):
            return json_response({"detail": f"{name.capitalize()} are required"}, 400)
    for name in profile.body_refused:
        if name in body:
            return json_response({"detail": f"Unsupported parameter: {name}"}, 400)
    return None


async def chat(request: Request) -> Response:
    return _refused(request) or await _body_refused(request) or await openai_chat.chat_completions(request)


async def messages(request: Request) -> Response:
    return _refused(request) or await _body_refused(request) or await anthropic.messages(request)


async def responses(request: Request) -> Response:
    return _refused(request) or await _body_refused(request) or await openai_responses.responses(request)


def _google_error(status: int, reason: str, message: str) -> Response:
    return json_response({"error": {"code": status, "message": message, "status": reason}}, status)


async def load_code_assist(request: Request) -> Response:
    """The account's tier and project; none until onboarded (then the tiers it may choose)."""
    state: OAuthState = request.app.state.oauth
    if (denied := _refused(request)) is not None:
        return denied
    state.load_calls += 1
    if state.onboarded:
        return json_response({"currentTier": {"id": "free-tier", "name": "Gemini Code Assist for individuals"},
                              "cloudaicompanionProject": state.profile.code_assist_project})
    return json_response({"allowedTiers": [{"id": "free-tier", "isDefault": True},
                                           {"id": "standard-tier", "userDefinedCloudaicompanionProject": True}]})


async def onboard_user(request: Request) -> Response:
    """A long-running operation: not done on the first call, done (with the project) after."""
    state: OAuthState = request.app.state.oauth
    if (denied := _refused(request)) is not None:
        return denied
    body = await _body(request)
    if body.get("tierId") != "free-tier" or not isinstance(body.get("metadata"), dict):
        return _google_error(400, "INVALID_ARGUMENT", "tierId and metadata are required")
    state.onboard_calls += 1
    if state.onboard_calls == 1:
        return json_response({"name": "operations/onboard-1", "done": False})
    state.onboarded = True
    project = state.profile.code_assist_project
    return json_response({"name": "operations/onboard-1", "done": True,
                          "response": {"cloudaicompanionProject": {"id": project, "name": project}}})


def _code_assist_answer(model: str, text: str, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if final:
        candidate["finishReason"] = "STOP"
        answer["usageMetadata"] = {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}
    return {"response": answer, "traceId": secrets.token_hex(4)}


async def code_assist_generate(request: Request) -> Response:
    """generateContent / streamGenerateContent?alt=sse: the wrapped request, the wrapped answer."""
    state: OAuthState = request.app.state.oauth
    await receive(request, "code-assist")  # recorded, as the family mocks record theirs
    if (denied := _refused(request)) is not None:
        return denied
    body = await _body(request)
    inner = body.get("request")
    if not isinstance(inner, dict) or not isinstance(inner.get("contents"), list) or "contents" in body:
        return _google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload: expected {model, project, request}")
    if not state.onboarded or body.get("project") != state.profile.code_assist_project:
        return _google_error(403, "PERMISSION_DENIED", "The caller does not have permission")
    model = str(body.get("model") or "")
    if not model or model.startswith("models/"):
        return _google_error(400, "INVALID_ARGUMENT", f"unknown model {model!r}")
    if request.url.path.endswith(":generateContent"):
        return json_response(_code_assist_answer(model, "Hello from Code Assist", final=True))
    if request.query_params.get("alt") != "sse":
        return _google_error(400, "INVALID_ARGUMENT", "streams are alt=sse")
    frames = [_code_assist_answer(model, "Hello from ", final=False),
              _code_assist_answer(model, "Code Assist", final=True)]
    return Response(b"".join(b"data: " + orjson.dumps(f) + b"\r\n\r\n" for f in frames),
                    media_type="text/event-stream")


async def configure(request: Request) -> Response:
    state: OAuthState = request.app.state.oauth
    body = await request.json()
    for name in ("expires_in", "fail_refresh", "refresh_delay_ms"):
        if name in body:
            setattr(state, name, body[name])
    return json_response({"ok": True})


async def revoke(request: Request) -> Response:
    request.app.state.oauth.access.clear()
    return json_response({"ok": True})


async def introspect(request: Request) -> Response:
    """RFC 7662-like: `token=<access token>` (form) → {"active": live or not}. Lets a resource
    server in another process (tests/mocks/mcp_tools.py, an MCP server) accept only live tokens."""
    state: OAuthState = request.app.state.oauth
    token = str((await request.form()).get("token", ""))
    expires = state.access.get(token)
    return json_response({"active": expires is not None and expires >= time.time()})


async def stats(request: Request) -> Response:
    state: OAuthState = request.app.state.oauth
    return json_response({"refreshes": state.refreshes, "issued": len(state.access)})


def create_app(profile: Profile | None = None) -> Starlette:
    app = Starlette(routes=[
        Route("/authorize", authorize, methods=["GET"]), Route("/token", token, methods=["POST"]),
        Route("/device/code", device_code, methods=["POST"]),
        Route("/device/approve", device_approve, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/backend-api/codex/responses", responses, methods=["POST"]),
        Route("/v1internal:loadCodeAssist", load_code_assist, methods=["POST"]),
        Route("/v1internal:onboardUser", onboard_user, methods=["POST"]),
        Route("/v1internal:generateContent", code_assist_generate, methods=["POST"]),
        Route("/v1internal:streamGenerateContent", code_assist_generate, methods=["POST"]),
        Route("/_oauth/config", configure, methods=["POST"]),
        Route("/_oauth/revoke", revoke, methods=["POST"]),
        Route("/_oauth/stats", stats, methods=["GET"]),
        Route("/_oauth/introspect", introspect, methods=["POST"]),
    ])
    app.state.oauth = OAuthState(profile)
    app.state.recorder = Recorder()
    return app


class OAuthServer:
    """The mock OAuth server on a free port, in a background thread (a context manager)."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.app = create_app(profile)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                     lifespan="off", timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    @property
    def state(self) -> OAuthState:
        state: OAuthState = self.app.state.oauth
        return state

    def __enter__(self) -> OAuthServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("mock OAuth server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
