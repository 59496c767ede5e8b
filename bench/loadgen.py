"""Open-loop HTTP load generator: fixed request rate, full latency histograms, time to first byte.

    python -m bench.loadgen --url URL --rate 100 --duration 10 [--stream] [--body FILE]
        [--header 'k: v' ...] [--connections 256]

Open loop: request i is due at start + i/rate whatever happened to earlier requests, and its
latency is measured from that due time — so a slow server cannot slow the generator down and
hide its own queueing (coordinated omission). Prints one JSON object with percentiles (ms),
errors, the achieved rate and the generator's own lag (how late it sent; if that is large, the
generator is the bottleneck and the run does not count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from hdrh.histogram import HdrHistogram

PERCENTILES = (50, 90, 95, 99, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 120_000_000, 3)  # microseconds, up to 120 s


@dataclass
class Results:
    latency: HdrHistogram = field(default_factory=new_histogram)
    ttfb: HdrHistogram = field(default_factory=new_histogram)
    lag: HdrHistogram = field(default_factory=new_histogram)
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self, rate: float, duration: float, elapsed: float) -> dict[str, object]:
        def pct(histogram: HdrHistogram) -> dict[str, float]:
            if histogram.get_total_count() == 0:
                return {}
            return {f"p{p:g}": round(histogram.get_value_at_percentile(p) / 1000, 3) for p in PERCENTILES} | {
                "max": round(histogram.get_max_value() / 1000, 3),
                "mean": round(histogram.get_mean_value() / 1000, 3)}

        return {"rate": rate, "duration": duration, "sent": self.ok + sum(self.errors.values()),
                "ok": self.ok, "errors": self.errors, "achieved_rate": round(self.ok / elapsed, 1),
                "latency_ms": pct(self.latency), "ttfb_ms": pct(self.ttfb), "send_lag_ms": pct(self.lag)}


async def one_request(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
                      due: float, stream: bool, results: Results) -> None:
    results.lag.record_value(max(1, int((time.monotonic() - due) * 1e6)))
    try:
        async with session.post(url, data=body, headers=headers) as response:
            first = True
            async for _ in response.content.iter_any():
                if first:
                    results.ttfb.record_value(max(1, int((time.monotonic() - due) * 1e6)))
                    first = False
                if not stream:
                    continue
            if response.status != 200:
                results.error(f"http_{response.status}")
                return
    except (TimeoutError, aiohttp.ClientError) as exc:
        results.error(type(exc).__name__)
        return
    results.latency.record_value(max(1, int((time.monotonic() - due) * 1e6)))
    results.ok += 1


async def run(url: str, rate: float, duration: float, body: bytes, headers: dict[str, str], stream: bool,
              connections: int, timeout: float) -> dict[str, object]:
    results = Results()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        # Warm the pool so the first second does not measure TCP connects.
        await asyncio.gather(*(one_request(session, url, body, headers, time.monotonic(),
                                           stream, Results()) for _ in range(min(32, connections))))
        # time.monotonic, not loop.time: uvloop's clock has millisecond resolution.
        total = int(rate * duration)
        start = time.monotonic() + 0.05
        tasks = []
        for index in range(total):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one_request(session, url, body, headers, due, stream, results)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return results.summary(rate, duration, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--body", help="file with the JSON body")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    body = open(args.body, "rb").read() if args.body else b"{}"
    headers = {"content-type": "application/json"}
    for header in args.header:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.time()
    summary = asyncio.run(run(args.url, args.rate, args.duration, body, headers, args.stream,
                              args.connections, args.timeout))
    summary["wall_s"] = round(time.time() - started, 2)
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
