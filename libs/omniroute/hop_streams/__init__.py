"""Requests as messages on long-lived gRPC streams (issue 20): edge → router and router → executor.

One unary gRPC call per request costs about twice the latency and a third more CPU than a message
on a stream that is already open (`bench/README.md`, "One hop per transport"). Here, a peer keeps a
few bidi `Session` streams per address, and each request is a `start` frame on one of them, its
answer `SessionEvents` frames with the same id:

- `server.serve` — the server side: each request runs as its own task through the SAME answer
  function the unary handlers use (the router's pipeline, the executor's relay);
- `client.ClientStream` — one stream, the client side: ids, per-request queues, credit, deadlines;
- `peers.PeerStreams` — every stream to one target: per resolved address a set of N streams,
  requests to the one with the fewest in flight, broken streams re-opened with backoff, names
  resolved again as they change (a headless Service's pods), not-started requests retried;
- `stubs` — `RouterStreams`, `ExecutorStreams`: the stubs' `Chat` / `ChatWhole` / `Execute` /
  `ExecuteWhole` over those streams, so that call sites do not change.

Back-pressure is per request, by credit: the caller's `start` grants the server a window of
frames for that request, and the caller grants more as its consumer takes them. The server's
task for a request whose consumer is slow waits for credit; the stream's reader never waits, so
other requests on the same stream are not held back (HTTP/2 flow control alone would stall the
whole stream behind one slow consumer).
"""
