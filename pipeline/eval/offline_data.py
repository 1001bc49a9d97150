"""The seven tasks' evaluation sets from `data_dir`, rewritten in the field layout of the Hugging Face
datasets that lm-eval's own task definitions read, so those definitions (prompts, choices, metrics)
apply unchanged. Formats and traps: see data_dir/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.artifacts import open_text

Row = dict[str, Any]


def read_jsonl(path: Path) -> Iterator[Row]:
    with open_text(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def boolq(data: Path) -> Iterator[Row]:
    """super_glue/boolq: question, passage, label (1 = yes)."""
    for i, row in enumerate(read_jsonl(data / "eval/boolq_dev.jsonl.gz")):
        yield {"question": row["question"], "passage": row["passage"], "idx": i, "label": int(row["answer"])}


def piqa(data: Path) -> Iterator[Row]:
    """piqa: goal, sol1, sol2, label; the labels live in a separate file, one per line."""
    labels = (data / "eval/piqa_valid-labels.lst").read_text().split()
    rows = list(read_jsonl(data / "eval/piqa_valid.jsonl"))
    if len(labels) != len(rows):
        raise ValueError(f"{data}/eval/piqa_valid-labels.lst has {len(labels)} labels for {len(rows)} questions")
    for row, label in zip(rows, labels, strict=True):
        yield {"goal": row["goal"], "sol1": row["sol1"], "sol2": row["sol2"], "label": int(label)}


def split_context(ctx: str) -> tuple[str, str]:
    """HellaSwag's ctx_a / ctx_b, which this copy has merged: ctx_b is what follows the last full stop.

    lm-eval joins them as ctx_a + " " + ctx_b.capitalize(), so the split decides one capital letter."""
    head, dot, tail = ctx.rpartition(". ")
    return (head + dot.rstrip(), tail) if dot else (ctx, "")


def hellaswag(data: Path) -> Iterator[Row]:
    """Rowan/hellaswag: activity_label, ctx_a, ctx_b, ctx, endings, label (a string, as on the hub)."""
    for row in read_jsonl(data / "eval/hellaswag_val.jsonl.gz"):
        ctx_a, ctx_b = split_context(row["ctx"])
        yield {"ind": row["idx"], "activity_label": row["activity_label"], "ctx_a": ctx_a, "ctx_b": ctx_b,
               "ctx": row["ctx"], "endings": row["endings"], "source_id": "", "split": "val",
               "split_type": "indomain", "label": str(row["label"])}


def winogrande(data: Path) -> Iterator[Row]:
    """winogrande_xl: sentence, option1, option2, answer ("1" / "2") — the same layout."""
    for row in read_jsonl(data / "eval/winogrande_xl_dev.jsonl"):
        yield {k: row[k] for k in ("sentence", "option1", "option2", "answer")}


def arc(path: Path) -> Iterator[Row]:
    """allenai/ai2_arc: id, question, choices {text, label}, answerKey; accepts the compact AI2 layout too."""
    for row in read_jsonl(path):
        question = row["question"]
        if isinstance(question, dict):  # {"stem", "choices": [{"text", "label"}]}
            choices = {"text": [c["text"] for c in question["choices"]], "label": [c["label"] for c in question["choices"]]}
            question = question["stem"]
        else:
            choices = row["choices"]
        yield {"id": row["id"], "question": question, "choices": choices, "answerKey": row["answerKey"]}


def openbookqa(data: Path) -> Iterator[Row]:
    """allenai/openbookqa (main): id, question_stem, choices {text, label}, answerKey."""
    for row in read_jsonl(data / "eval/openbookqa_main_test.jsonl"):
        q = row["question"]
        yield {"id": row["id"], "question_stem": q["stem"],
               "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]},
               "answerKey": row["answerKey"]}


# task -> (split lm-eval evaluates, rows in the hub layout)
TASKS: dict[str, tuple[str, Callable[[Path], Iterator[Row]]]] = {
    "boolq": ("validation", boolq),
    "piqa": ("validation", piqa),
    "hellaswag": ("validation", hellaswag),
    "winogrande": ("validation", winogrande),
    "arc_easy": ("test", lambda d: arc(d / "eval/arc_easy_test.hf_format.jsonl")),
    "arc_challenge": ("test", lambda d: arc(d / "eval/arc_challenge_test.jsonl")),
    "openbookqa": ("test", openbookqa),
}


def write_task_data(task: str, data_dir: Path, out_dir: Path) -> tuple[str, Path]:
    """(split, file) of the task's evaluation set in hub layout, written once per data_dir."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the seven GPT4All tasks are {', '.join(TASKS)}")
    split, rows = TASKS[task]
    path = out_dir / f"{task}.jsonl"
    if not path.is_file():
        try:
            text = "".join(json.dumps(row) + "\n" for row in rows(data_dir))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"eval: {task} data missing under {data_dir}: {exc.filename}") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.rename(path)
    return split, path
