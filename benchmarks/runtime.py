"""Runtime benchmarks, each beside its baseline in the same run:

1. our GPT4All/Embed4All vs gpt4all 2.8.2's (the `bench` extra), the same code calling each API on the same
   GGUF, each measurement in fresh processes, alternating: import time, load time, RSS after load,
   prefill tokens/s of a ~1k-token prompt, decode tokens/s, chat-turn TTFT after ~1k tokens of history,
   embedding throughput;
2. decode tokens/s of GPT4All.generate vs a bare llama_cpp.Llama loop (same file, threads, sampling);
3. time to first token of a chat turn after ~1,000 tokens of history: KV reuse vs re-evaluating it all;
4. streaming through the OpenAI-compatible server (SSE over 127.0.0.1) vs in-process streaming.

    python -m benchmarks.runtime [--threads 2] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
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
from pipeline.quantize.convert import convert
from runtime.embed import bundled_embedding_model
from runtime.model import GPT4All, SamplingParams
from runtime.server import free_port

OUT = Path("benchmarks/out/runtime")
LOAD_RUNS_PER_REPEAT = 4
CHATML = "<|im_start|>user\n{0}<|im_end|>\n<|im_start|>assistant\n{1}<|im_end|>\n"

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


def gpt4all_loadable_copy(source: Path) -> Path:
    """A copy of the GGUF whose tokenizer.ggml.pre says "refact" (the same regex as SmolLM2's "smollm"),
    which gpt4all 2.8.2's older llama.cpp knows; both sides load this copy."""
    OUT.mkdir(parents=True, exist_ok=True)
    copy = OUT / source.name
    if not copy.exists():
        data = bytearray(source.read_bytes())
        key = b"tokenizer.ggml.pre"
        at = data.index(key) + len(key) + 4 + 8  # value type (u32), string length (u64), then the string
        assert data[at : at + 6] == b"smollm", data[at : at + 16]
        data[at : at + 6] = b"refact"
        copy.write_bytes(bytes(data))
    return copy


WORKER = r"""
import json, sys, time
start = time.perf_counter()
if sys.argv[1] == "ours":
    from runtime import GPT4All, Embed4All
else:
    from gpt4all import GPT4All, Embed4All
imported = time.perf_counter() - start
path, threads, task = sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = {"import_s": imported}
if task == "embed":
    texts = json.loads(open(sys.argv[5]).read())
    embedder = Embed4All(sys.argv[6], model_path=sys.argv[7], allow_download=False, n_threads=threads, device="cpu")
    embedder.embed(texts[:8])
    start = time.perf_counter()
    embedder.embed(texts)
    out["embed_per_s"] = len(texts) / (time.perf_counter() - start)
    print(json.dumps(out)); sys.exit()
start = time.perf_counter()
model = GPT4All(path.rsplit("/", 1)[1], model_path=path.rsplit("/", 1)[0], allow_download=False, n_threads=threads,
                device="cpu")
out["load_s"] = time.perf_counter() - start
out["ready_s"] = imported + out["load_s"]
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked parent (this benchmark, model loaded)
out["rss_mib"] = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
if task == "prefill":
    prompt = open(sys.argv[5]).read()
    start = time.perf_counter()
    model.generate(prompt, max_tokens=1, n_batch=512, top_k=1)
    out["prefill_s"] = time.perf_counter() - start
elif task == "decode":
    stamps = []
    model.generate("Once upon a time, in a small village by the sea,", max_tokens=int(sys.argv[5]), top_k=1,
                   callback=lambda token, piece: stamps.append(time.perf_counter()) or True)
    out["decode_per_s"] = (len(stamps) - 1) / (stamps[-1] - stamps[0])
elif task == "chat":
    turns = json.loads(open(sys.argv[5]).read())
    with model.chat_session(system_prompt="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
                            prompt_template=sys.argv[6]):
        for turn in turns:
            model.generate(turn, max_tokens=48, top_k=1, n_batch=512)
        stamps = []
        start = time.perf_counter()
        model.generate("Summarize what you told me in one sentence.", max_tokens=1, top_k=1, n_batch=512,
                       callback=lambda token, piece: stamps.append(time.perf_counter()) or True)
        out["ttft_s"] = stamps[0] - start
print(json.dumps(out))
"""


def peer_run(impl: str, model: Path, threads: int, task: str, *args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", WORKER, impl, str(model), str(threads), task, *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_vs_gpt4all(model: GPT4All, threads: int, tokens: int, repeats: int) -> list[dict[str, object]]:
    """Each task in fresh processes, ours and gpt4all's alternating; medians."""
    copy = gpt4all_loadable_copy(model.path)
    prompt_file = OUT / "prompt-1k.txt"
    words = ("The tides rise and fall twice a day because the Moon pulls on the oceans of the Earth. " * 80).split()
    prompt = " ".join(words)
    while model.count_tokens(prompt) > 1000:
        prompt = prompt.rsplit(" ", 1)[0]
    prompt_file.write_text(prompt)
    chat_file = OUT / "chat-turns.json"
    chat_file.write_text(json.dumps([f"Tell me fact number {i} about the ocean, its tides and its currents, "
                                     "in two sentences." for i in range(1, 9)]))
    texts_file = OUT / "embed-texts.json"
    texts_file.write_text(json.dumps([f"Sentence {i}: " + " ".join(words[i % 50 : i % 50 + 20]) for i in range(256)]))
    minilm = OUT / "all-MiniLM-L6-v2.gguf2.f16.gguf"  # gpt4all's file name; ours maps it to the bundled copy
    if not minilm.exists():
        convert(bundled_embedding_model(), minilm, "f16", name="all-MiniLM-L6-v2")
    tasks = {"load": [], "prefill": [str(prompt_file)], "decode": [str(tokens)], "chat": [str(chat_file), CHATML],
             "embed": [str(texts_file), minilm.name, str(OUT)]}
    runs = {"load": LOAD_RUNS_PER_REPEAT}  # import and load take ~0.3 s: more samples for their ~5 ms differences
    results: dict[str, dict[str, list[float]]] = {"ours": {}, "gpt4all": {}}
    for repeat in range(repeats):
        for task, args in tasks.items():
            for turn in range(runs.get(task, 1)):
                # who goes first alternates, so drift on a shared machine does not favour one side
                for impl in ("ours", "gpt4all") if (repeat + turn) % 2 == 0 else ("gpt4all", "ours"):
                    measured = peer_run(impl, copy, threads, task, *args)
                    for key, value in measured.items():
                        if task == "load" or key not in ("import_s", "load_s", "ready_s", "rss_mib"):
                            results[impl].setdefault(key, []).append(value)
    ours = {k: statistics.median(v) for k, v in results["ours"].items()}
    peer = {k: statistics.median(v) for k, v in results["gpt4all"].items()}
    n_prompt = model.count_tokens(prompt)

    def row(measure: str, key: str, unit: str, higher_is_better: bool) -> dict[str, object]:
        """Medians of each side; the ratio is the median of the pairs' ratios (ours better > 1)."""
        a, b = ours[key], peer[key]
        pairs = list(zip(results["ours"][key], results["gpt4all"][key], strict=True))
        ratio = statistics.median((x / y) if higher_is_better else (y / x) for x, y in pairs)
        wins = sum((x > y) if higher_is_better else (x < y) for x, y in pairs)
        digits = 3 if unit == "s" else 2
        return {"measure": measure, "ours": f"{a:.{digits}f} {unit}",
                "baseline": f"{b:.{digits}f} {unit} (gpt4all 2.8.2)",
                "ratio": f"{ratio:.2f}x (ours ahead in {wins}/{len(pairs)} pairs)", "goal": ">= 1.0x"}

    return [
        row("`from <package> import GPT4All, Embed4All`", "import_s", "s", False),
        row("GPT4All(...) load", "load_s", "s", False),
        row("import + load: from a fresh process to a loaded model", "ready_s", "s", False),
        row("peak RSS after load (VmHWM)", "rss_mib", "MiB", False),
        row(f"prefill of a {n_prompt}-token prompt", "prefill_s", "s", False),
        row(f"decode tok/s ({tokens} tokens, greedy)", "decode_per_s", "tok/s", True),
        row("chat turn TTFT after 8 turns (prompt template, KV kept)", "ttft_s", "s", False),
        row("Embed4All texts/s (256 sentences, batch)", "embed_per_s", "texts/s", True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = GPT4All(n_threads=args.threads)
    rows = bench_vs_gpt4all(model, args.threads, args.tokens, args.repeats)
    print(rows, flush=True)
    rows.append(bench_decode(model, args.threads, args.tokens, args.repeats))
    print(rows[-1], flush=True)
    rows += bench_ttft(model, args.repeats)
    print(rows[-2:], flush=True)
    rows += bench_server(model, args.threads, args.tokens, args.repeats)
    print(rows[-2:], flush=True)
    path = save("runtime", {
        "title": "runtime: vs gpt4all 2.8.2, GPT4All API, KV reuse, server streaming",
        "setup": f"Model {Path(model.path).name} (bundled SmolLM2-135M-Instruct), {args.threads} threads, "
                 f"sampling {SAMPLING}, medians of {args.repeats} interleaved repeats.",
        "rows": rows,
        "notes": ["vs gpt4all: the same worker script imports `runtime` or `gpt4all` and calls the same API "
                  "(GPT4All(name, model_path=..., allow_download=False, n_threads, device='cpu'), generate, "
                  "chat_session(system_prompt, prompt_template), Embed4All().embed) in a fresh process per "
                  "measurement; both load one copy of the GGUF with tokenizer.ggml.pre set to 'refact', which "
                  "gpt4all's older llama.cpp needs. gpt4all embeds with all-MiniLM-L6-v2 converted to GGUF by "
                  "pipeline/quantize/convert/ (its vectors match ours to cosine 0.99999), ours with the same "
                  "model through transformers; RSS is the process's peak right after load (VmHWM).",
                  f"vs gpt4all, pairs: each measurement runs once per side back to back, who goes first alternating; "
                  f"import, load and RSS come from {LOAD_RUNS_PER_REPEAT} load-only pairs per repeat "
                  f"({LOAD_RUNS_PER_REPEAT * args.repeats} in all). The ratio is the median of the pairs' ratios, and "
                  "'ahead in k/n pairs' counts the pairs ours won: on this shared 2-core machine the ~0.1 s rows "
                  "are bimodal for both packages (a chat-turn TTFT is ~88 ms or ~113 ms from one process to the "
                  "next), so the two sides' medians alone can land in different modes.",
                  "vs gpt4all, what each call evaluates: both packages evaluate a finished chat turn's end (the "
                  "prompt template's text after {1}) before generate returns, so the timed turn evaluates the same "
                  "~20 tokens on both sides; gpt4all evaluates each sampled token before calling the callback, ours "
                  "calls it first (the first token arrives one decode step, ~12 ms here, sooner: most of the TTFT "
                  "gap), and after a plain prompt gpt4all also evaluates its blank-line suffix (inside the prefill "
                  "row's time, ~1%).",
                  "Decode rates count tokens from the first to the last (prefill excluded).",
                  "TTFT with KV reuse: the history is already in the cache from the previous turn, so only "
                  "the new user turn is evaluated; the baseline clears the cache and evaluates everything.",
                  "Server rate counts SSE chunks with content received by the official openai client."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
