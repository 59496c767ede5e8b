"""What each subscription provider's servers insist on, as mock OAuth/API profiles
(tests/mocks/oauth.py). Stated here from the providers' public clients, independently of
libs/omniroute/catalog.yaml, so that a wrong preset value fails the tests."""

from __future__ import annotations

from .oauth import Profile

CODEX_ACCOUNT = "acct-mock-7f3a"
CODE_ASSIST_PROJECT = "mock-companion-4821"

PROFILES: dict[str, Profile] = {
    # Claude Code: PKCE; the code page shows "code#state"; JSON token endpoint that wants state;
    # the Messages API takes the Bearer token only with the oauth beta flag among its flags
    # (never x-api-key), and only for a system prompt that starts with Claude Code's identity.
    "claude-code": Profile(
        client_id="9d1c250a-e61b-44d9-88ed-5944d1962f5e", authorize_params={"code": "true"},
        code_page=True, token_format="json", exchange_state=True,
        api_headers={"anthropic-version": ""}, api_header_flags={"anthropic-beta": "oauth-2025-04-20"},
        api_headers_absent=("x-api-key",),
        system_prefix="You are Claude Code, Anthropic's official CLI for Claude."),
    # OpenAI Codex: PKCE with the Codex CLI's extra authorize parameters; the id_token names the
    # ChatGPT account, which every Responses call repeats.
    "codex": Profile(
        client_id="app_EMoamEEZ73f0CkXaXp7hrann",
        authorize_params={"id_token_add_organizations": "true", "codex_cli_simplified_flow": "true"},
        id_token_claims={"https://api.openai.com/auth": {"chatgpt_account_id": CODEX_ACCOUNT}},
        api_headers={"chatgpt-account-id": CODEX_ACCOUNT, "OpenAI-Beta": "responses=experimental",
                     "originator": "codex_cli_rs"},
        # The ChatGPT backend: top-level instructions, never stored, streamed only, no output cap.
        body_values={"store": False, "stream": True}, body_required=("instructions",),
        body_refused=("max_output_tokens",)),
    # GitHub Copilot: device flow; a token without expiry or refresh token; integration and
    # editor headers on every call.
    "github-copilot": Profile(
        client_id="Ov23li8tweQw6odWQebz", refresh_tokens=False,
        api_headers={"Copilot-Integration-Id": "vscode-chat", "Editor-Version": ""}),
    # Gemini CLI: Google's installed-app client (its published secret goes with every grant),
    # PKCE with offline access; Code Assist's wrapped bodies with the onboarded project.
    "gemini-cli": Profile(
        client_id="681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
        authorize_params={"access_type": "offline"}, code_assist_project=CODE_ASSIST_PROJECT),
    # Qwen: device flow with PKCE; DashScope's OAuth auth type header.
    "qwen-code": Profile(
        client_id="f0304373b74a44d2b584a3fb70ca9e56", device_pkce=True,
        api_headers={"X-DashScope-AuthType": "qwen-oauth"}),
}
