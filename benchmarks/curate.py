"""The curate stage end to end, on its default config, per corpus shape, at 100k and 1M generated pairs.

Corpora come from benchmarks/curate_corpus.py: four shapes (real pairs with half their words swapped;
records of unrelated Alpaca sentences; short pairs; long code answers), each with planted exact copies,
1-2 word near copies, chains A ~ B ~ C and paraphrases (data/curate/paraphrases.jsonl: the same prompt
with its answer in other words). The stage runs as a user runs it (`python -m pipeline curate`), in its
own process; reported: wall time, CPU time, peak memory of the whole process tree (summed PSS, sampled
every second), and per dedupe rule how many it removed and the precision (removed beside a member of its
own planted group), plus recall of the planted copies and of the paraphrases.

With --text-dedup PYTHON (a Python whose environment has text-dedup 0.4, e.g. a separate venv), its
MinHash dedupe runs on the same corpus with the same shingles, permutations and threshold.

    python -m benchmarks.curate [--sizes 100000 1000000] [--shapes edited unrelated short code] [--text-dedup PY]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks.curate_corpus import SHAPES, Plant, generate
from benchmarks.report import save

OUT = Path("benchmarks/out/curate")
COPIES = ("exact", "near", "chain")
DUPLICATE_RULES = ("exact_duplicate", "near_duplicate", "semantic_duplicate", "prompt_duplicate")


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


def quality(plant: Plant, found: dict[int, tuple[str, int]], removed_before: set[int]) -> dict:
    """Per rule: removals and precision; recall of planted copies and of paraphrases.

    `found`: each line removed as a duplicate -> (rule, the line it was grouped with); `removed_before`:
    lines a filter removed before any dedupe step. A planted group (an original with its exact, near and
    chain copies, or with its paraphrase; the corpus is shuffled, so any member may come first) whose m
    members reach the dedupe steps should lose m - 1 of them, to any duplicate rule; recall is the share
    lost. Precision of a rule: its removals grouped with a member of their own planted group."""
    members = Counter(g for line, g in enumerate(plant.group) if line not in removed_before)
    kinds: dict[int, set[str]] = {}
    for g, kind in zip(plant.group, plant.kind, strict=True):
        kinds.setdefault(g, set()).add(kind)
    originals = {g for g, k in kinds.items() if "base" in k}
    lost = Counter(plant.group[line] for line, (_, kept) in found.items() if plant.group[line] == plant.group[kept])
    out: dict = {"rules": {}}
    for rule in DUPLICATE_RULES:
        mine = [(line, kept) for line, (r, kept) in found.items() if r == rule]
        if mine:
            right = sum(plant.group[line] == plant.group[kept] for line, kept in mine)
            out["rules"][rule] = {"removed": len(mine), "precision": right / len(mine)}
    for name, wanted in (("copies", lambda k: bool(k & set(COPIES))), ("paraphrases", lambda k: "paraphrase" in k)):
        groups = {g for g in originals if wanted(kinds[g]) and members[g] > 1}
        expected = sum(members[g] - 1 for g in groups)
        out[f"recall_{name}"] = sum(min(lost[g], members[g] - 1) for g in groups) / max(expected, 1)
        out[f"planted_{name}"] = expected
    right = sum(plant.group[line] == plant.group[kept] for line, (_, kept) in found.items())
    out["precision"] = right / max(len(found), 1)
    return out


def line_of(record_id: str) -> int:
    return int(record_id[1:])


def run_ours(corpus: Path, name: str, plant: Plant, overrides: list[str]) -> dict:
    runs = OUT / "runs"
    stats = measured([sys.executable, "-m", "pipeline", "curate", f"curate.input={corpus}", f"run.runs_dir={runs}",
                      f"run.name={name}", "--force", *overrides])
    found, before = {}, set()
    for text in (runs / name / "curate" / "removed.jsonl").open():
        row = json.loads(text)
        removed = row["removed"]
        if removed["rule"] in DUPLICATE_RULES:
            found[line_of(row["id"])] = (removed["rule"], line_of(removed["duplicate_of"]))
        else:
            before.add(line_of(row["id"]))
    counts = json.loads((runs / name / "curate" / "manifest.json").read_text())["counts"]
    html = (runs / name / "curate" / "map.html").stat().st_size / 1e6
    return {**stats, **quality(plant, found, before), "counts": counts, "map_mb": html}


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


def run_text_dedup(python: Path, corpus: Path, name: str, n: int, plant: Plant) -> dict:
    """text-dedup 0.4's MinHash (the same 3-word shingles, 128 permutations, threshold 0.7, 2 processes) on
    the same texts (prompt and response joined, as ours compares them); it has no filters."""
    texts = OUT / f"text-dedup-{name}.jsonl"
    with texts.open("w") as out:
        for line in corpus.open():
            row = json.loads(line)
            out.write(json.dumps({"id": row["id"], "text": "\n".join(m["content"] for m in row["messages"])}) + "\n")
    output = OUT / f"text-dedup-{name}"
    stats = measured([str(python), "-m", "text_dedup.minhash", "--path", "json", "--data_files", str(texts),
                      "--split", "train", "--cache_dir", str(OUT / "text-dedup-cache"), "--output", str(output),
                      "--column", "text", "--num_perm", "128", "--threshold", "0.7", "--ngram", "3",
                      "--num_proc", "2", "--min_length", "0", "--debug"])
    found = subprocess.run([str(python), "-c", ROOTS, str(output), str(n)], check=True, capture_output=True, text=True)
    root = {int(line): ("near_duplicate", kept) for line, kept in json.loads(found.stdout).items()}
    return {**stats, **quality(plant, root, set()), "removed": len(root)}


def rules_cell(result: dict) -> str:
    return "; ".join(f"{rule.removesuffix('_duplicate')} {r['removed']:,} @ {r['precision']:.4f}"
                     for rule, r in result["rules"].items()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--text-dedup", type=Path, help="a Python with text-dedup 0.4 installed")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for our stage (key=value)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        for shape in args.shapes:
            name = f"{shape}-{n}"
            corpus = OUT / f"corpus-{name}.jsonl"
            plant = generate(n, corpus, shape)
            ours = run_ours(corpus, name, plant, args.set)
            print(name, ours, flush=True)
            peer = run_text_dedup(args.text_dedup, corpus, name, n, plant) if args.text_dedup else None
            print(name, "text-dedup", peer, flush=True)
            rows.append({
                "corpus": f"{shape}, {n:,} pairs",
                "wall / CPU / peak memory": f"{ours['wall']:.0f} s / {ours['cpu']:.0f} CPU-s / {ours['peak_gib']:.2f} GiB",
                "removed per rule @ precision": rules_cell(ours),
                "recall: copies / paraphrases": f"{ours['recall_copies']:.4f} / {ours['recall_paraphrases']:.3f} "
                                                f"(of {ours['planted_copies']:,} / {ours['planted_paraphrases']:,})",
                "text-dedup 0.4 MinHash: wall / CPU / memory": (f"{peer['wall']:.0f} s / {peer['cpu']:.0f} CPU-s / "
                                                                f"{peer['peak_gib']:.2f} GiB" if peer else "-"),
                "text-dedup: removed @ precision; recall copies / paraphrases": (
                    f"{peer['removed']:,} @ {peer['precision']:.4f}; {peer['recall_copies']:.4f} / "
                    f"{peer['recall_paraphrases']:.3f}" if peer else "-"),
            })
    save("curate", {
        "title": "curate: the stage end to end per corpus shape (default config)",
        "setup": "Generated corpora (benchmarks/curate_corpus.py), four shapes: `edited` (real Alpaca/self-instruct "
                 "pairs with half their words swapped, plus refusals 1% and evaluation 13-grams 0.1%), `unrelated` "
                 "(two Alpaca instructions, 3-8 unrelated Alpaca sentences), `short` (an Alpaca instruction and an "
                 "unrelated Alpaca output of at most 20 words: each prompt recurs with other answers), `code` (3-6 "
                 "Alpaca code snippets, identifiers renamed). Planted: exact copies (3% in edited, else 1%), 1-2 "
                 "word near copies (4% / 3%), chains A ~ B ~ C (1%), paraphrases (0.5%: a real Alpaca pair, then "
                 "the same prompt with the answer rewritten by SmolLM2-135M, data/curate/paraphrases.jsonl). "
                 "`python -m pipeline curate` with the default config (filters, 13-gram decontamination, exact, "
                 "MinHash and semantic dedupe, the map), 2 cores.",
        "rows": rows,
        "notes": ["Peak memory sums the PSS of every process of the stage's tree (the MinHash workers included), "
                  "sampled every second: pages the forked workers share with the stage count once.",
                  "Precision per rule: removals grouped with a member of their own planted group. Recall: a planted "
                  "group of m members reaching the dedupe steps should lose m - 1 to any duplicate rule; copies of "
                  "refusals and contaminated pairs are left out (the filters remove them first). A short pair's copy "
                  "with 2 edits can be genuinely below the 0.7 Jaccard threshold and still counts as missed.",
                  "Paraphrase recall is bounded by the paraphrases: a 135M model's rewrite sometimes drifts from the "
                  "meaning, and the semantic threshold (0.8 on both prompt and answer, centred cosines) is set for "
                  "precision first.",
                  "text-dedup 0.4.0 runs from its own venv (its pins clash with ours: rich<14, urllib3<=2): "
                  "`python3 -m venv /tmp/venv-textdedup; /tmp/venv-textdedup/bin/pip install text-dedup==0.4.0 "
                  "--no-deps` plus datasets, scipy, xxhash, click, click-option-group, ftfy, regex, 'rich<14', "
                  "bitarray, pybloom-live, zstandard, fire; then `python -m benchmarks.curate --text-dedup "
                  "/tmp/venv-textdedup/bin/python`. It has no filters and no semantic step."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


if __name__ == "__main__":
    main()
