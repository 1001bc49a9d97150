"""The curate stage end to end, on its default config, at 100k and 1M generated pairs.

The corpus is built from the bundled instruction data (Alpaca, self-instruct, seed tasks): every base pair
is a real prompt and response with half of their words swapped for words of the same vocabulary (so base
pairs are distinct, Alpaca-length and word-realistic), plus planted problems: exact copies (3%), near
copies with 1-2 word edits (4%), chains A ~ B ~ C where C is an edit of B (1%), refusals (1%) and pairs
carrying a 13-gram of an evaluation set (0.1%). The stage runs as a user runs it (`python -m pipeline
curate`), in its own process; reported: wall time, CPU time, peak RSS of the whole process tree (sampled
every 0.2 s), near-duplicate recall and precision against the plant.

With --text-dedup PYTHON (a Python whose environment has text-dedup 0.4, e.g. a separate venv), its
MinHash dedupe runs on the same corpus with the same shingles, permutations and threshold.

    python -m benchmarks.curate [--sizes 100000 1000000] [--text-dedup /path/to/python]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks.report import save
from pipeline.curate.decontaminate import file_texts

OUT = Path("benchmarks/out/curate")
SEED = 42
REFUSAL = "I'm sorry, but as an AI language model I cannot help with that request."


@dataclass
class Plant:
    """Ground truth: each line's group (copies share their original's) and kind."""

    group: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)


def sources() -> tuple[list[str], list[str]]:
    alpaca = json.load(gzip.open("data/instruct/alpaca_5000_subset.json.gz", "rt"))
    prompts = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in alpaca]
    prompts += [json.loads(x).get("instruction", "") for x in Path("data/instruct/alpaca_seed_tasks.jsonl").open()]
    responses = [r["output"] for r in alpaca if len(r["output"].split()) >= 20]
    return [p for p in prompts if p], responses


def scramble(text: str, rng: random.Random, vocab: list[str]) -> str:
    return " ".join(w if rng.random() < 0.5 else rng.choice(vocab) for w in text.split())


def edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        at = rng.randrange(len(words))
        kind = rng.choice(["sub", "ins", "del"])
        if kind == "sub":
            words[at] = rng.choice(vocab)
        elif kind == "ins":
            words.insert(at, rng.choice(vocab))
        elif len(words) > 10:
            del words[at]
    return " ".join(words)


def generate(n: int, path: Path) -> Plant:
    """Write n pairs (gpt4all shape: prompt, response, source) and return what was planted where."""
    rng = random.Random(SEED)
    prompts, responses = sources()
    vocab = sorted({w for r in responses for w in r.split()})
    contamination = [t for t in file_texts(Path("data/eval/hellaswag.jsonl.gz")) if len(t.split()) > 30][:2000]
    rows: list[tuple[str, str, int, str]] = []  # prompt, response, group, kind
    while len(rows) < n:
        roll = rng.random()
        if rows and roll < 0.03:
            p, r, g, _ = rng.choice(rows)
            rows.append((p, r, g, "exact"))
        elif rows and roll < 0.07:
            p, r, g, _ = rng.choice(rows)
            rows.append((p, edit(r, rng, vocab), g, "near"))
        elif rows and roll < 0.08:
            p, r, g, _ = rng.choice(rows)
            b = edit(r, rng, vocab)
            rows += [(p, b, g, "near"), (p, edit(b, rng, vocab), g, "chain")]
        else:
            p, r = scramble(rng.choice(prompts), rng, vocab), scramble(rng.choice(responses), rng, vocab)
            if roll < 0.09:
                r = REFUSAL + " " + r
            elif roll < 0.091:
                r = r + " " + rng.choice(contamination)
            rows.append((p, r, len(rows), "refusal" if roll < 0.09 else "base"))
    order = list(range(n))
    rng.shuffle(order)
    plant = Plant()
    with path.open("w") as handle:
        for i in order:
            p, r, g, kind = rows[i]
            handle.write(json.dumps({"prompt": p, "response": r, "source": "bench"}) + "\n")
            plant.group.append(g)
            plant.kind.append(kind)
    return plant


def measured(command: list[str]) -> dict[str, float]:
    """Wall time, CPU time and the peak RSS of the process tree of a command."""
    start = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, cpu = 0, {}
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
            for p in tree:
                cpu[p.pid] = sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{err[-3000:]}")
    return {"wall": wall, "cpu": sum(cpu.values()), "peak_gib": peak / 2**30}


def our_quality(run: Path, corpus: Path, plant: Plant) -> tuple[float, float]:
    """Near-duplicate recall (planted edits removed as duplicates of their own group) and precision."""
    group_of = {}
    for line, g in zip(corpus.open(), plant.group, strict=True):
        row = json.loads(line)
        group_of.setdefault((row["prompt"], row["response"]), g)
    id_group = {}
    for name in ("pairs.jsonl", "removed.jsonl"):
        for line in (run / "curate" / name).open():
            row = json.loads(line)
            messages = row.get("messages") or []
            if len(messages) == 2:
                id_group[row["id"]] = group_of.get((messages[0]["content"], messages[1]["content"]))
    found = flagged = right = 0
    for line in (run / "curate" / "removed.jsonl").open():
        row = json.loads(line)
        removed = row["removed"]
        if removed["rule"] != "near_duplicate":
            continue
        flagged += 1
        right += id_group.get(row["id"]) == id_group.get(removed["duplicate_of"])
    planted = sum(1 for k in plant.kind if k in ("near", "chain"))
    found = right
    return found / planted, right / max(flagged, 1)


def run_ours(corpus: Path, n: int, plant: Plant) -> dict:
    runs = OUT / "runs"
    stats = measured([sys.executable, "-m", "pipeline", "curate", f"curate.input={corpus}", f"run.runs_dir={runs}",
                      f"run.name=n{n}", "--force"])
    recall, precision = our_quality(runs / f"n{n}", corpus, plant)
    counts = json.loads((runs / f"n{n}" / "curate" / "manifest.json").read_text())["counts"]
    html = (runs / f"n{n}" / "curate" / "map.html").stat().st_size / 1e6
    return {**stats, "recall": recall, "precision": precision, "counts": counts, "map_mb": html}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--text-dedup", type=Path, help="a Python with text-dedup 0.4 installed")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        corpus = OUT / f"corpus-{n}.jsonl"
        plant = generate(n, corpus)
        ours = run_ours(corpus, n, plant)
        print(n, ours, flush=True)
        rows.append({"measure": f"{n:,} pairs, default config: wall / CPU time",
                     "ours": f"{ours['wall']:.0f} s / {ours['cpu']:.0f} CPU-s", "baseline": "-", "ratio": "-",
                     "goal": "< 600 s wall" if n >= 1_000_000 else "-"})
        rows.append({"measure": f"{n:,} pairs: peak RSS of the process tree", "ours": f"{ours['peak_gib']:.2f} GiB",
                     "baseline": "-", "ratio": "-", "goal": "< 6 GiB" if n >= 1_000_000 else "-"})
        rows.append({"measure": f"{n:,} pairs: near-duplicate recall / precision (planted 1-2 word edits, chains)",
                     "ours": f"{ours['recall']:.4f} / {ours['precision']:.4f}", "baseline": "-", "ratio": "-",
                     "goal": ">= 0.99 / >= 0.999"})
        rows.append({"measure": f"{n:,} pairs: kept, removed by rule; map.html", "ours":
                     f"{ours['counts']['kept']:,} kept; " + ", ".join(f"{k[8:]} {v:,}" for k, v in ours["counts"].items()
                                                                    if k.startswith("removed_")) + f"; {ours['map_mb']:.1f} MB",
                     "baseline": "-", "ratio": "-", "goal": "map.html <= 5 MB"})
    save("curate", {
        "title": "curate: the stage end to end at 100k and 1M pairs (default config)",
        "setup": "Generated corpus (see benchmarks/curate.py): real Alpaca/self-instruct prompts and responses with "
                 "half their words swapped, plus planted exact copies (3%), 1-2 word near copies (4%), chains "
                 "A ~ B ~ C (1%), refusals (1%), evaluation 13-grams (0.1%). `python -m pipeline curate` with the "
                 "default config (filters, 13-gram decontamination, exact, MinHash and static-embedding semantic "
                 "dedupe, the map), 2 cores.",
        "rows": rows,
        "notes": ["Peak RSS sums every process of the stage's tree (the MinHash workers included), sampled every 0.2 s.",
                  "Recall: planted near copies removed as near_duplicate with duplicate_of in their own group; "
                  "precision: near_duplicate removals whose duplicate_of is in the same planted group."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


if __name__ == "__main__":
    main()
