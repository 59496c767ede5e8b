"""Mock upstream providers that speak each family's real wire format (see README.md here).

    from tests.mocks import start_mock_server
    with start_mock_server() as mock:          # all families on one port, in a background thread
        client = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k")
        ...
        assert mock.last(path="/v1/chat/completions").body["model"] == "mock-text"

Standalone: ``python -m tests.mocks --port 9999 [--host 127.0.0.1]``.
Load-test upstream: ``python -m tests.mocks.fast_openai --port 9998 --latency-ms 0 --tokens 100 --tps 0``.
"""

from .common import MODEL_NAMES, SCENARIOS, RecordedRequest, Recorder
from .server import MockServer, start_mock_server

__all__ = ["MODEL_NAMES", "SCENARIOS", "MockServer", "RecordedRequest", "Recorder", "start_mock_server"]
