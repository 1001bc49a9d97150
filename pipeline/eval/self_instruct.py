"""Self-instruct ground-truth perplexity (the GPT4All report's plot): for each of the 252 user-oriented
instructions, the perplexity of its reference answer given the instruction, clipped at 100."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import mean, median
from typing import Any

from pipeline.plots import figure

CLIP = 100.0
FILE = "instruct/self_instruct_user_oriented_instructions.jsonl"


def load_pairs(data_dir: Path, limit: int | None) -> list[tuple[str, str]]:
    """(instruction with its input, reference output) pairs."""
    path = data_dir / FILE
    if not path.is_file():
        raise FileNotFoundError(f"eval: self-instruct file not found: {path}")
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            instance = row["instances"][0]
            prompt = row["instruction"] + (f"\n\n{instance['input']}" if instance["input"].strip() else "")
            pairs.append((prompt, instance["output"]))
    return pairs[:limit] if limit else pairs


def perplexities(model: Any, tokenizer: Any, pairs: list[tuple[str, str]]) -> list[float]:
    """Per pair, exp(mean NLL of the answer's tokens) under an lm-eval LM, the prompt in the chat template."""
    from lm_eval.api.instance import Instance

    requests = []
    for i, (prompt, answer) in enumerate(pairs):
        context = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True)
        requests.append(Instance("loglikelihood", {}, (context, answer), i))
    scores = model.loglikelihood(requests)
    return [min(CLIP, math.exp(-ll / max(len(model.tok_encode(answer)), 1)))
            for (ll, _), (_, answer) in zip(scores, pairs, strict=True)]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "mean": round(mean(values), 3), "median": round(median(values), 3),
            "clipped_at_100": sum(1 for v in values if v >= CLIP)}


def histogram(values: list[float], label: str, path: Path) -> None:
    with figure(path, figsize=(7, 4)) as (_, ax):
        ax.hist(values, bins=25, range=(0, CLIP), color="#3b7dd8")
        ax.set_xlabel("ground-truth response perplexity (clipped at 100)")
        ax.set_ylabel("instructions")
        ax.set_title(f"self-instruct, {label}: median {median(values):.1f}")
