"""Runtime benchmarks, each beside its baseline in the same run:

1. decode tokens/s of GPT4All.generate vs a bare llama_cpp.Llama loop (same file, threads, sampling);
2. time to first token of a chat turn after ~1,000 tokens of history: KV reuse vs re-evaluating it all;
3. streaming through the OpenAI-compatible server (SSE over 127.0.0.1) vs in-process streaming.

    python -m benchmarks.runtime [--threads 2] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import llama_cpp
import openai

from benchmarks.report import save
from runtime.model import GPT4All, SamplingParams
from runtime.server import free_port

# Greedy on a story opening: both sides produce the same 128 tokens without an early end of text.
PROMPT = "Once upon a time, in a small village by the sea,"
SAMPLING = {"temp": 0.0, "top_k": 40, "top_p": 0.4, "min_p": 0.0, "repeat_penalty": 1.18}


def decode_rate(pieces: Iterator[object], count: list[int]) -> float:
    """Tokens/s from the first token to the last (decode only, prefill excluded)."""
    first = None
    n = 0
    for _ in pieces:
        n += 1
        if first is None:
            first = time.perf_counter()
    count.append(n)
    assert first is not None
    return (n - 1) / (time.perf_counter() - first)


def bare_llama_tokens(llama: llama_cpp.Llama, tokens: int) -> Iterator[int]:
    llama.reset()
    prompt = llama.tokenize(PROMPT.encode(), add_bos=False)
    for n, token in enumerate(llama.generate(prompt, **SAMPLING), start=1):
        llama.detokenize([token])
        yield token
        if n >= tokens:
            return


def bench_decode(model: GPT4All, threads: int, tokens: int, repeats: int) -> dict[str, object]:
    bare = llama_cpp.Llama(str(model.path), n_ctx=2048, n_threads=threads, verbose=False)
    ours_rates, bare_rates, counts = [], [], []
    params = SamplingParams(max_tokens=tokens, n_batch=512, **SAMPLING)
    for _ in range(repeats):  # interleaved, so drift hits both alike
        model.llama.reset()
        ours_rates.append(decode_rate(model.stream_text(PROMPT, params), counts))
        bare_rates.append(decode_rate(bare_llama_tokens(bare, tokens), counts))
    ours, base = statistics.median(ours_rates), statistics.median(bare_rates)
    return {"measure": f"decode tok/s ({tokens} tokens, median of {repeats})",
            "ours": f"{ours:.1f}", "baseline": f"{base:.1f} (bare llama_cpp.Llama)", "ratio": f"{ours / base:.3f}",
            "goal": ">= 0.95"}


def history(model: GPT4All, target_tokens: int) -> list[dict[str, str]]:
    """A canned conversation of about `target_tokens` tokens."""
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a helpful assistant."}]
    turn = 0
    while model.count_tokens(model.render(messages)) < target_tokens:
        turn += 1
        messages.append({"role": "user", "content": f"Tell me fact number {turn} about the ocean and its tides."})
        messages.append({"role": "assistant", "content": (
            f"Fact {turn}: tides are driven by the Moon's and Sun's gravity; the ocean bulges toward and away "
            "from the Moon, so most coasts see two high and two low tides each lunar day, about 24 hours "
            "and 50 minutes long, with spring tides at new and full moon.")})
    return messages


def time_to_first_token(model: GPT4All, messages: list[dict[str, str]], params: SamplingParams) -> float:
    start = time.perf_counter()
    next(iter(model.stream_chat(messages, params)))
    return time.perf_counter() - start


def bench_ttft(model: GPT4All, repeats: int) -> list[dict[str, object]]:
    rows = []
    past = history(model, 1000)
    turn = [*past, {"role": "user", "content": "Summarize what you told me in one sentence."}]
    n_history = model.count_tokens(model.render(past))
    for n_batch in (8, 512):
        params = SamplingParams(max_tokens=1, n_batch=n_batch, **SAMPLING)
        reuse, fresh = [], []
        for _ in range(repeats):
            model.llama.reset()
            # The previous turn left the whole history in the KV cache.
            list(model.stream_text(model.render(past, add_generation_prompt=False), SamplingParams(max_tokens=1)))
            reuse.append(time_to_first_token(model, turn, params))
            model.llama.reset()
            fresh.append(time_to_first_token(model, turn, params))
        ours, base = statistics.median(reuse), statistics.median(fresh)
        rows.append({"measure": f"chat turn TTFT after {n_history} tokens of history, n_batch={n_batch}",
                     "ours": f"{ours * 1000:.0f} ms (KV reuse)", "baseline": f"{base * 1000:.0f} ms (re-evaluate)",
                     "ratio": f"{base / ours:.1f}x faster", "goal": ">= 3x"})
    return rows


def bench_server(model: GPT4All, threads: int, tokens: int, repeats: int) -> list[dict[str, object]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "serve", str(model.path), "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        params = SamplingParams(max_tokens=tokens, n_batch=512, **SAMPLING)
        remote_rate, local_rate, remote_ttft, local_ttft, counts = [], [], [], [], []
        # Both sides keep the prompt in their KV cache from the warm-up call, so TTFT differs only by HTTP.
        list(model.stream_text(PROMPT, params))
        list(client.completions.create(model=model.name, prompt=PROMPT, max_tokens=tokens, stream=True))
        for _ in range(repeats):
            start = time.perf_counter()
            stream = model.stream_text(PROMPT, params)
            next(stream)
            local_ttft.append(time.perf_counter() - start)
            local_rate.append(decode_rate(stream, counts))
            start = time.perf_counter()
            chunks = iter(client.completions.create(model=model.name, prompt=PROMPT, max_tokens=tokens, stream=True,
                                                    temperature=0, extra_body={"top_k": 40, "repeat_penalty": 1.18}))
            next(chunks)
            remote_ttft.append(time.perf_counter() - start)
            remote_rate.append(decode_rate((c for c in chunks if c.choices[0].text), counts))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ours, base = statistics.median(remote_rate), statistics.median(local_rate)
    return [
        {"measure": f"streamed tok/s ({tokens} tokens)", "ours": f"{ours:.1f} (server, SSE)",
         "baseline": f"{base:.1f} (in-process)", "ratio": f"{ours / base:.3f}", "goal": "overhead only"},
        {"measure": "time to first streamed token", "ours": f"{statistics.median(remote_ttft) * 1000:.0f} ms (server)",
         "baseline": f"{statistics.median(local_ttft) * 1000:.0f} ms (in-process)",
         "ratio": f"{(statistics.median(remote_ttft) - statistics.median(local_ttft)) * 1000:+.0f} ms", "goal": "-"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = GPT4All(n_threads=args.threads)
    rows = [bench_decode(model, args.threads, args.tokens, args.repeats)]
    print(rows[-1], flush=True)
    rows += bench_ttft(model, args.repeats)
    print(rows[-2:], flush=True)
    rows += bench_server(model, args.threads, args.tokens, args.repeats)
    print(rows[-2:], flush=True)
    path = save("runtime", {
        "title": "runtime: GPT4All API, KV reuse, server streaming",
        "setup": f"Model {Path(model.path).name} (bundled SmolLM2-135M-Instruct), {args.threads} threads, "
                 f"sampling {SAMPLING}, medians of {args.repeats} interleaved repeats.",
        "rows": rows,
        "notes": ["Decode rates count tokens from the first to the last (prefill excluded).",
                  "TTFT with KV reuse: the history is already in the cache from the previous turn, so only "
                  "the new user turn is evaluated; the baseline clears the cache and evaluates everything.",
                  "Server rate counts SSE chunks with content received by the official openai client."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
