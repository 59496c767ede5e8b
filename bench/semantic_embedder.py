"""What the semantic cache's embedding costs per request: the bundled sentence model
(all-MiniLM-L6-v2, int8 ONNX, `caches/embedders.MiniLMEmbedder`) against the hashing embedder,
for prompts of a few sizes, in this process, one core.

    python -m bench.semantic_embedder [--calls 300] [--cpu 1]

Prints the model's load time and the memory it adds (RSS), then per prompt size p50 / p99 latency
and CPU per embedding (`time.process_time()`: the model runs on one intra-op thread). A semantic
request embeds its prompt once (a miss then also writes the vector; a hit only reads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Callable

from omniroute_router.caches.embedders import HashingEmbedder, MiniLMEmbedder

_SENTENCE = "How do I reverse a list in Python without changing the original one"
PROMPTS = {  # name → the prompt text as the semantic cache embeds it ("role: content")
    "short (12 tokens)": "user: How do I reverse a list in Python?",
    "medium (~70 tokens)": "system: You are a helpful assistant.\nuser: " + " and ".join([_SENTENCE] * 4),
    "window (~250 tokens)": "user: " + " and ".join([_SENTENCE] * 16),
}


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _measure(embed: Callable[[str], list[float]], text: str, calls: int) -> tuple[float, float, float]:
    for _ in range(10):  # warm-up
        embed(text)
    latencies = []
    cpu_start = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        embed(text)
        latencies.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_start) * 1000 / calls
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1], cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    model = MiniLMEmbedder.installed()
    if model is None:
        raise SystemExit("the sentence model is not installed (requirements.txt)")
    before = _rss_mb()
    started = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - started
    print(f"model load: {load_s * 1000:.0f} ms, RSS +{_rss_mb() - before:.0f} MB "
          f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    asyncio.run(model.embed("warm the thread pool"))
    hashing = HashingEmbedder()
    print("| prompt | embedder | p50 ms | p99 ms | CPU ms per embedding |")
    print("|---|---|---|---|---|")
    for name, text in PROMPTS.items():
        for label, embed in (("MiniLM int8", model.vector), ("hashing", hashing.vector)):
            p50, p99, cpu = _measure(embed, text, args.calls)
            print(f"| {name} | {label} | {p50:.2f} | {p99:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
