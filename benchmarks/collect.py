"""collect throughput against a loopback OpenAI server with fixed latency and a server-side rate limit.

Ours: the collect stage (async, rate-limited, cached) configured at the server's limit.
Baseline: a sequential loop over the official sync `openai` client, same prompts and server.

    python -m benchmarks.collect [--prompts 300] [--rpm 1200] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import openai

from benchmarks.report import save
from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from tests.fake_openai import FakeOpenAI


def run_ours(url: str, prompts: list[str], rpm: float, workdir: Path) -> tuple[float, dict[str, int | float]]:
    source = workdir / "prompts.jsonl"
    source.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    cfg = load_config(None, [
        f"collect.teacher.base_url={url}", "collect.teacher.model=bench", f"collect.teacher.requests_per_minute={rpm}",
        "collect.teacher.max_concurrency=16", f"run.runs_dir={workdir}",
        f'collect.sources=[{{type: jsonl, name: bench, path: "{source}"}}]'])
    start = time.perf_counter()
    manifest, _ = execute(STAGES["collect"], cfg, RunDir(cfg.run_dir()), force=True)
    return time.perf_counter() - start, manifest.counts


def run_sequential(url: str, prompts: list[str]) -> float:
    client = openai.OpenAI(base_url=url, api_key="unused")
    start = time.perf_counter()
    for prompt in prompts:
        client.chat.completions.create(model="bench", messages=[{"role": "user", "content": prompt}], max_tokens=512)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    limit_rps = args.rpm / 60
    with FakeOpenAI(latency_s=args.latency, max_rps=limit_rps) as server, tempfile.TemporaryDirectory() as tmp:
        ours_s, counts = run_ours(server.url, [f"ours {i}" for i in range(args.prompts)], args.rpm, Path(tmp))
        refused_ours = server.over_limit
        base_s = run_sequential(server.url, [f"base {i}" for i in range(args.prompts)])
    ours_rps, base_rps = args.prompts / ours_s, args.prompts / base_s
    rows = [
        {"measure": f"requests/s, {args.prompts} prompts", "ours": f"{ours_rps:.2f} (collect stage)",
         "baseline": f"{base_rps:.2f} (sequential openai loop)", "ratio": f"{ours_rps / base_rps:.1f}x",
         "goal": "-"},
        {"measure": "share of the configured rate limit", "ours": f"{ours_rps / limit_rps:.1%}",
         "baseline": f"{base_rps / limit_rps:.1%}", "ratio": "-", "goal": ">= 90%"},
        {"measure": "requests refused by the server (429)", "ours": str(refused_ours), "baseline": "-",
         "ratio": "-", "goal": "0"},
    ]
    print(rows, counts)
    save("collect", {
        "title": "collect: teacher throughput at a rate limit",
        "setup": f"Loopback OpenAI-protocol server (tests/fake_openai.py) answering after {args.latency:.2f} s, "
                 f"enforcing {args.rpm:.0f} requests/min with a token bucket; collect configured at the same limit "
                 "with 16 requests in flight.",
        "rows": rows,
        "notes": ["Ours includes everything the stage does: reading sources, SQLite cache writes per answer, "
                  "writing pairs.jsonl and the manifest.",
                  "A sequential client is bound by latency (1/latency requests/s) whatever the limit."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


if __name__ == "__main__":
    main()
