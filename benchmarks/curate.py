"""The curate stage end to end, on its default config, at 100k and 1M generated pairs.

The corpus is built from the bundled instruction data (Alpaca, self-instruct, seed tasks): every base pair
is a real prompt and response with half of their words swapped for words of the same vocabulary (so base
pairs are distinct, Alpaca-length and word-realistic), plus planted problems: exact copies (3%), near
copies with 1-2 word edits (4%), chains A ~ B ~ C where C is an edit of B (1%), refusals (1%) and pairs
carrying a 13-gram of an evaluation set (0.1%). The stage runs as a user runs it (`python -m pipeline
curate`), in its own process; reported: wall time, CPU time, peak memory of the whole process tree
(summed PSS, sampled every second), duplicate recall and precision against the plant.

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
from collections import Counter
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
    contamination = [t for t in file_texts(Path("data/eval/hellaswag_val.jsonl.gz")) if len(t.split()) > 30][:2000]
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
            rows.append((p, r, len(rows), "refusal" if roll < 0.09 else "contaminated" if roll < 0.091 else "base"))
    order = list(range(n))
    rng.shuffle(order)
    plant = Plant()
    with path.open("w") as handle:
        for line, i in enumerate(order):
            p, r, g, kind = rows[i]
            messages = [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
            handle.write(json.dumps({"id": f"L{line}", "source": "bench", "messages": messages, "meta": {}}) + "\n")
            plant.group.append(g)
            plant.kind.append(kind)
    return plant


def pss(pid: int) -> int:
    """Proportional set size: a page shared by k processes (forked workers) counts 1/k in each."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))


def measured(command: list[str]) -> dict[str, float]:
    """Wall time, CPU time and the peak memory of the process tree of a command (summed PSS, so pages
    forked workers share with their parent count once)."""
    start = time.perf_counter()
    log = OUT / "stage.log"  # a file, not a pipe: progress bars would fill a pipe nobody reads until the end
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)
    peak, cpu = 0, {}
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(pss(p.pid) for p in tree))
            for p in tree:
                cpu[p.pid] = sum(p.cpu_times()[:2])
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(1.0)  # reading PSS walks the page tables: not too often
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{log.read_text()[-3000:]}")
    return {"wall": wall, "cpu": sum(cpu.values()), "peak_gib": peak / 2**30}


def quality(plant: Plant, root: dict[int, int], removed_before: set[int]) -> tuple[float, float]:
    """Dedupe recall and precision against the plant. `root`: each line removed as a duplicate -> the line
    it was grouped with; `removed_before`: lines a filter removed before any dedupe step.

    A planted group (an original and its exact and near copies; the corpus is shuffled, so any member may
    come first) of an original pair (not a refusal or contaminated: those leave by filters) whose m members
    reach the dedupe steps should lose m - 1 of them as duplicates of the group; recall is the share found.
    Precision: duplicate removals grouped with a member of their own planted group."""
    right = sum(plant.group[line] == plant.group[kept] for line, kept in root.items())
    originals = {g for g, kind in zip(plant.group, plant.kind, strict=True) if kind == "base"}
    members = Counter(g for line, g in enumerate(plant.group) if line not in removed_before)
    planted = {g for g, kind in zip(plant.group, plant.kind, strict=True) if kind in ("exact", "near", "chain")}
    expected = sum(members[g] - 1 for g in planted & originals if members[g] > 1)
    found = sum(plant.group[line] == plant.group[kept] for line, kept in root.items() if plant.group[line] in originals)
    return found / max(expected, 1), right / max(len(root), 1)


def line_of(record_id: str) -> int:
    return int(record_id[1:])


def run_ours(corpus: Path, n: int, plant: Plant) -> dict:
    runs = OUT / "runs"
    stats = measured([sys.executable, "-m", "pipeline", "curate", f"curate.input={corpus}", f"run.runs_dir={runs}",
                      f"run.name=n{n}", "--force"])
    root, before = {}, set()
    for text in (runs / f"n{n}" / "curate" / "removed.jsonl").open():
        row = json.loads(text)
        removed = row["removed"]
        if removed["rule"] in ("exact_duplicate", "near_duplicate"):
            root[line_of(row["id"])] = line_of(removed["duplicate_of"])
        elif removed["rule"] != "semantic_duplicate":
            before.add(line_of(row["id"]))
    recall, precision = quality(plant, root, before)
    counts = json.loads((runs / f"n{n}" / "curate" / "manifest.json").read_text())["counts"]
    html = (runs / f"n{n}" / "curate" / "map.html").stat().st_size / 1e6
    return {**stats, "recall": recall, "precision": precision, "counts": counts, "map_mb": html}


ROOTS = """
import json, pickle, sys
from datasets import load_from_disk
uf = pickle.load(open(sys.argv[1] + "/uf.pkl", "rb"))
kept = set(load_from_disk(sys.argv[1])["id"])
roots = {}
for line in range(int(sys.argv[2])):
    if f"L{line}" not in kept:
        roots[line] = uf.find(line)
json.dump(roots, sys.stdout)
"""


def run_text_dedup(python: Path, corpus: Path, n: int, plant: Plant) -> dict:
    """text-dedup 0.4's MinHash (the same 3-word shingles, 128 permutations, threshold 0.7, 2 processes) on
    the same texts (prompt and response joined, as ours compares them); it has no filters."""
    texts = OUT / f"text-dedup-{n}.jsonl"
    with texts.open("w") as out:
        for line in corpus.open():
            row = json.loads(line)
            out.write(json.dumps({"id": row["id"], "text": "\n".join(m["content"] for m in row["messages"])}) + "\n")
    output = OUT / f"text-dedup-{n}"
    stats = measured([str(python), "-m", "text_dedup.minhash", "--path", "json", "--data_files", str(texts),
                      "--split", "train", "--cache_dir", str(OUT / "text-dedup-cache"), "--output", str(output),
                      "--column", "text", "--num_perm", "128", "--threshold", "0.7", "--ngram", "3",
                      "--num_proc", "2", "--min_length", "0", "--debug"])
    found = subprocess.run([str(python), "-c", ROOTS, str(output), str(n)], check=True, capture_output=True, text=True)
    root = {int(line): kept for line, kept in json.loads(found.stdout).items()}
    recall, precision = quality(plant, root, set())
    return {**stats, "recall": recall, "precision": precision, "removed": len(root)}


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
        peer = run_text_dedup(args.text_dedup, corpus, n, plant) if args.text_dedup else None
        print(n, "text-dedup", peer, flush=True)
        rows.append({"measure": f"{n:,} pairs: wall / CPU time (ours: the whole stage, default config)",
                     "ours": f"{ours['wall']:.0f} s / {ours['cpu']:.0f} CPU-s",
                     "baseline": f"{peer['wall']:.0f} s / {peer['cpu']:.0f} CPU-s (MinHash only)" if peer else "-",
                     "ratio": f"{peer['wall'] / ours['wall']:.2f}x" if peer else "-",
                     "goal": "< 600 s wall" if n >= 1_000_000 else "-"})
        rows.append({"measure": f"{n:,} pairs: peak memory of the process tree (summed PSS)", "ours": f"{ours['peak_gib']:.2f} GiB",
                     "baseline": f"{peer['peak_gib']:.2f} GiB" if peer else "-",
                     "ratio": f"{peer['peak_gib'] / ours['peak_gib']:.2f}x" if peer else "-",
                     "goal": "< 6 GiB" if n >= 1_000_000 else "-"})
        rows.append({"measure": f"{n:,} pairs: duplicate recall / precision (planted exact copies, 1-2 word edits, chains)",
                     "ours": f"{ours['recall']:.4f} / {ours['precision']:.4f}",
                     "baseline": f"{peer['recall']:.4f} / {peer['precision']:.4f}" if peer else "-", "ratio": "-",
                     "goal": ">= 0.99 / >= 0.999"})
        rows.append({"measure": f"{n:,} pairs: kept, removed by rule; map.html", "ours":
                     f"{ours['counts']['kept']:,} kept; " + ", ".join(f"{k[8:]} {v:,}" for k, v in ours["counts"].items()
                                                                    if k.startswith("removed_")) + f"; {ours['map_mb']:.1f} MB",
                     "baseline": f"{peer['removed']:,} removed" if peer else "-", "ratio": "-", "goal": "map.html <= 5 MB"})
    save("curate", {
        "title": "curate: the stage end to end at 100k and 1M pairs (default config)",
        "setup": "Generated corpus (see benchmarks/curate.py): real Alpaca/self-instruct prompts and responses with "
                 "half their words swapped, plus planted exact copies (3%), 1-2 word near copies (4%), chains "
                 "A ~ B ~ C (1%), refusals (1%), evaluation 13-grams (0.1%). `python -m pipeline curate` with the "
                 "default config (filters, 13-gram decontamination, exact, MinHash and static-embedding semantic "
                 "dedupe, the map), 2 cores.",
        "rows": rows,
        "notes": ["Peak memory sums the PSS of every process of the stage's tree (the MinHash workers included), "
                  "sampled every second: pages the forked workers share with the stage count once.",
                  "Recall and precision count exact and near duplicates together (text-dedup's MinHash removes both): "
                  "a planted group of m members reaching the dedupe steps should lose m - 1; copies of refusals and "
                  "contaminated pairs are left out (our filters remove them first). A copy of a short pair with 2 "
                  "edits can be genuinely below the 0.7 Jaccard threshold and still counts as missed.",
                  "text-dedup 0.4.0 runs from its own venv (its pins clash with ours: rich<14, urllib3<=2): "
                  "`python3 -m venv benchmarks/.venv-textdedup; benchmarks/.venv-textdedup/bin/pip install "
                  "text-dedup==0.4.0 --no-deps` plus datasets, scipy, xxhash, click, click-option-group, ftfy, "
                  "regex, 'rich<14', bitarray, pybloom-live, zstandard, fire; then `python -m benchmarks.curate "
                  "--text-dedup benchmarks/.venv-textdedup/bin/python`."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


if __name__ == "__main__":
    main()
