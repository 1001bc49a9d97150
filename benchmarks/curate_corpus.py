"""Generated corpora for the curate benchmark, in four shapes, each with planted duplicates and a ground truth.

Shapes (every base pair is distinct; copies are planted after them and the whole file is shuffled):

- ``edited``: a real Alpaca/self-instruct prompt and response with half of their words swapped for words of
  the same vocabulary (the corpus the benchmark has always used).
- ``unrelated``: Alpaca-length records whose prompt is two Alpaca instructions and whose response is 3-8
  unrelated sentences drawn from Alpaca outputs (long texts whose mean token vectors crowd together).
- ``short``: an Alpaca instruction and, drawn apart from it, an Alpaca output of at most 20 words (at 100k
  records each prompt comes ~20 times with other answers and each answer ~60 times after other prompts:
  neither is a duplicate pair).
- ``code``: a programming request (plus an Alpaca instruction) and an answer made of 3-6 code snippets from
  Alpaca's code outputs, each snippet's identifiers renamed to random words.

Planted: exact copies (``exact``), 1-2 word edits (``near``), chains A ~ B ~ C (``chain``), and, where
``data/curate/paraphrases.jsonl`` has them, a real Alpaca pair and later the same prompt with the response
in other words (``paraphrase``: the semantic step's recall; each shipped paraphrase is planted once at most).
Refusals and evaluation 13-grams are planted in ``edited`` only (the filters' job, not the dedupe's).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pipeline.curate.decontaminate import file_texts
from pipeline.records import normalize_text

REFUSAL = "I'm sorry, but as an AI language model I cannot help with that request."
PARAPHRASES = Path("data/curate/paraphrases.jsonl")
SHAPES = ("edited", "unrelated", "short", "code")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
CODE_LINE = re.compile(r"^\s*(def |class |import |for .*:$|if .*:$|print\(|return |SELECT |#include|public |function )",
                       re.M)
DUPLICATE_KINDS = ("exact", "near", "chain", "paraphrase")


@dataclass
class Plant:
    """Ground truth: each line's group (copies share their original's) and kind."""

    group: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)


@dataclass
class Sources:
    prompts: list[str]
    responses: list[str]
    sentences: list[str]
    short: list[str]
    code: list[str]
    vocab: list[str]
    paraphrases: dict[tuple[str, str], str]  # (prompt, response) -> the response in other words


def alpaca_prompt(row: dict) -> str:
    return row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")


@cache
def sources() -> Sources:
    alpaca = json.load(gzip.open("data/instruct/alpaca_5000_subset.json.gz", "rt"))
    prompts = [alpaca_prompt(r) for r in alpaca]
    prompts += [json.loads(x).get("instruction", "") for x in Path("data/instruct/alpaca_seed_tasks.jsonl").open()]
    responses = [r["output"] for r in alpaca if len(r["output"].split()) >= 20]
    sentences = sorted({s.strip() for r in alpaca for s in SENTENCE.split(r["output"])
                        if 6 <= len(s.split()) <= 40 and "\n" not in s.strip()})
    short = sorted({r["output"] for r in alpaca if 3 <= len(r["output"].split()) <= 20})
    code = [r["output"] for r in alpaca if CODE_LINE.search(r["output"]) and len(r["output"].split()) >= 8]
    paraphrases = {}
    if PARAPHRASES.is_file():
        for line in PARAPHRASES.open():
            row = json.loads(line)
            paraphrases[(row["prompt"], row["response"])] = row["response_paraphrase"]
    vocab = sorted({w for r in responses for w in r.split()})
    return Sources(prompts=[p for p in prompts if p], responses=responses, sentences=sentences, short=short,
                   code=code, vocab=vocab, paraphrases=paraphrases)


def scramble(text: str, rng: random.Random, vocab: list[str]) -> str:
    return " ".join(w if rng.random() < 0.5 else rng.choice(vocab) for w in text.split())


def edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    """1-2 word substitutions, insertions or deletions (a deletion only in texts over 10 words)."""
    words = text.split(" ")
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


CODE_REQUESTS = ["Write a program that does the following.", "Implement these helpers in one file.",
                 "Give me code for these tasks.", "Show an implementation of each part below."]


IDENTIFIER = re.compile(r"\b[a-z_][a-z0-9_]{2,}\b")
KEYWORDS = {"def", "return", "for", "while", "if", "else", "elif", "import", "from", "class", "print", "and", "not",
            "int", "str", "len", "range", "function", "var", "let", "const", "public", "void", "true", "false", "null"}


def rename(code: str, rng: random.Random, vocab: list[str]) -> str:
    """The snippet with each identifier (not a keyword) renamed to a random word, consistently."""
    names: dict[str, str] = {}

    def new(match: re.Match) -> str:
        name = match.group(0)
        if name in KEYWORDS:
            return name
        return names.setdefault(name, "".join(c for c in rng.choice(vocab).lower() if c.isalpha()) or name)

    return IDENTIFIER.sub(new, code)


def base_pair(shape: str, rng: random.Random, src: Sources) -> tuple[str, str]:
    """One distinct base pair of a shape (a paraphrasable source pair where the shape allows)."""
    if shape == "edited":
        return scramble(rng.choice(src.prompts), rng, src.vocab), scramble(rng.choice(src.responses), rng, src.vocab)
    if shape == "unrelated":
        prompt = " ".join(rng.sample(src.prompts, 2))
        return prompt, " ".join(rng.sample(src.sentences, rng.randint(3, 8)))
    if shape == "short":
        return rng.choice(src.prompts), rng.choice(src.short)
    if shape == "code":
        snippets = [rename(s, rng, src.vocab) for s in rng.sample(src.code, rng.randint(3, 6))]
        return f"{rng.choice(CODE_REQUESTS)} {rng.choice(src.prompts)}", "\n\n".join(snippets)
    raise ValueError(f"unknown corpus shape {shape!r}; known: {', '.join(SHAPES)}")


def paraphrase_pair(rng: random.Random, src: Sources) -> tuple[tuple[str, str], str] | None:
    """A (source pair, its response in other words) from the shipped paraphrases, or None when none are."""
    if not src.paraphrases:
        return None
    original = rng.choice(sorted(src.paraphrases))
    return original, src.paraphrases[original]


def generate(n: int, path: Path, shape: str = "edited", seed: int = 42, paraphrase_share: float = 0.005) -> Plant:
    """Write n pairs (gpt4all shape: prompt, response, source) and return what was planted where: exact
    copies 1-3%, near copies 3-4%, chains 1% (each a copy of a random earlier row), paraphrases
    `paraphrase_share` (a shipped source pair, then its paraphrase later)."""
    rng = random.Random(seed)
    src = sources()
    contamination = ([t for t in file_texts(Path("data/eval/hellaswag_val.jsonl.gz")) if len(t.split()) > 30][:2000]
                     if shape == "edited" else [])
    exact, near = (0.03, 0.07) if shape == "edited" else (0.01, 0.04)
    rows: list[tuple[str, str, int, str]] = []  # prompt, response, group, kind
    drawn: set[str] = set()
    while len(rows) < n:
        roll = rng.random()
        if rows and roll < exact:
            p, r, g, _ = rng.choice(rows)
            rows.append((p, r, g, "exact"))
        elif rows and roll < near:
            p, r, g, _ = rng.choice(rows)
            rows.append((p, edit(r, rng, src.vocab), g, "near"))
        elif rows and roll < near + 0.01:
            p, r, g, _ = rng.choice(rows)
            b = edit(r, rng, src.vocab)
            rows += [(p, b, g, "near"), (p, edit(b, rng, src.vocab), g, "chain")]
        elif roll < near + 0.01 + paraphrase_share and (found := paraphrase_pair(rng, src)) \
                and normalize_text(" ".join(found[0])).lower() not in drawn:
            (p, r), rp = found
            drawn.add(normalize_text(f"{p} {r}").lower())
            rows += [(p, r, len(rows), "base"), (p, rp, len(rows), "paraphrase")]
        else:
            p, r = base_pair(shape, rng, src)
            key = normalize_text(f"{p} {r}").lower()
            if key in drawn:  # base pairs are distinct: a repeat would be an unplanted duplicate
                continue
            drawn.add(key)
            kind = "base"
            if shape == "edited" and roll < 0.09:
                r, kind = REFUSAL + " " + r, "refusal"
            elif shape == "edited" and roll < 0.091:
                r, kind = r + " " + rng.choice(contamination), "contaminated"
            rows.append((p, r, len(rows), kind))
    rows = rows[:n]
    order = list(range(len(rows)))
    rng.shuffle(order)
    plant = Plant()
    with path.open("w") as handle:
        for line, i in enumerate(order):
            p, r, g, kind = rows[i]
            messages = [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
            handle.write(json.dumps({"id": f"L{line}", "source": shape, "messages": messages, "meta": {}}) + "\n")
            plant.group.append(g)
            plant.kind.append(kind)
    return plant
