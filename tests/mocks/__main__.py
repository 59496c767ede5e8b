"""``python -m tests.mocks --port 9999 [--host 127.0.0.1] [--log-level info]``: all families."""

from __future__ import annotations

import argparse

from .server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.mocks", description="OmniRoute mock upstreams")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    print(
        f"mock upstreams (openai, openai-responses, anthropic, gemini, ollama) on http://{args.host}:{args.port}"
    )
    serve_forever(args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
