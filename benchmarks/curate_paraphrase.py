"""Make data/curate/paraphrases.jsonl: Alpaca answers said again in other words by the bundled
SmolLM2-135M-Instruct, the planted semantic duplicates of the curate benchmark and the positives of
benchmarks/curate_calibrate.py.

The pairs: Alpaca rows without an input whose one-line answer has 20-70 words, shuffled with seed 29, the
first 320. Each answer goes to the model once ("Rewrite the following text in other words, keeping its
meaning. Reply with the rewritten text only.", temperature 0.3, at most 160 tokens) and the reply is
appended to a raw file as it comes (a rerun resumes). The shipped file keeps the replies whose length is
0.5-2 times the answer's and that differ from it; a 135M model's paraphrase sometimes drifts, and nothing
else is filtered (a filter by embedding similarity would grade the semantic step on its own test).

    python -m benchmarks.curate_paraphrase [--batch 30] [--ship-only]   # generate (resumable), then ship
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path

RAW = Path("benchmarks/out/curate/paraphrases.raw.jsonl")
SHIPPED = Path("data/curate/paraphrases.jsonl")
INSTRUCTION = "Rewrite the following text in other words, keeping its meaning. Reply with the rewritten text only."
PAIRS = 320


def chosen_pairs() -> list[dict]:
    rows = json.load(gzip.open("data/instruct/alpaca_5000_subset.json.gz", "rt"))
    rows = [r for r in rows if 20 <= len(r["output"].split()) <= 70 and not r["input"] and "\n" not in r["output"]]
    random.Random(29).shuffle(rows)
    return rows[:PAIRS]


def generate(batch: int) -> None:
    from runtime import GPT4All

    RAW.parent.mkdir(parents=True, exist_ok=True)
    done = sum(1 for _ in RAW.open()) if RAW.exists() else 0
    todo = chosen_pairs()[done : done + batch]
    if not todo:
        return
    model = GPT4All("SmolLM2-135M-Instruct", n_threads=2)
    with RAW.open("a") as out:
        for row in todo:
            with model.chat_session():
                reply = model.generate(f"{INSTRUCTION}\n\nText: {row['output']}", max_tokens=160, temp=0.3)
            out.write(json.dumps({"prompt": row["instruction"], "response": row["output"],
                                  "response_paraphrase": reply.strip()}) + "\n")
            out.flush()


def ship() -> int:
    """Write the shipped file from the raw replies; returns how many it keeps."""
    kept = []
    for row in map(json.loads, RAW.open()):
        said, again = row["response"], row["response_paraphrase"].strip().strip('"').strip()
        if again and again != said and 0.5 <= len(again) / len(said) <= 2:
            kept.append({**row, "response_paraphrase": again})
    SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    SHIPPED.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=PAIRS, help="answers to paraphrase in this run")
    parser.add_argument("--ship-only", action="store_true", help="only write the shipped file from the raw one")
    args = parser.parse_args()
    if not args.ship_only:
        generate(args.batch)
    print(ship(), "paraphrases in", SHIPPED)


if __name__ == "__main__":
    main()
