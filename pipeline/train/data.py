"""Records -> token ids with labels (loss only on assistant turns), validation split, packed or padded batches.

Chat format: the conversation is rendered with the tokenizer's chat template one turn at a time; each
assistant turn's text (its content and end-of-turn marker) is labelled, everything else is -100.
GPT4All format (the paper recipes): for each exchange, `prompt + "\\n"` (masked) then `response + eos`.

Packing puts several sequences in one row with position ids restarting at 0 for each; transformers then
builds a block-diagonal causal mask from the position ids, so no token attends across sequences and the
loss equals the unpacked loss.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from pipeline.records import Record

IGNORE = -100


class DataError(ValueError):
    """A dataset that cannot be trained on; says why."""


@dataclass
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        """Labels that carry loss; nothing predicts the first token, so it never does."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


@dataclass
class EncodeStats:
    records: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    dropped_no_target: int = 0
    sources: dict[str, int] = field(default_factory=dict)


def chat_segments(tokenizer, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:  # noqa: ANN001
    """(text, is_assistant) pieces whose concatenation is the rendered conversation."""
    segments: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not before.startswith(done) or not through.startswith(before):
            raise DataError("the chat template does not render conversations as growing prefixes; "
                            "use train.template=gpt4all")
        segments += [(before[len(done) :], False), (through[len(before) :], True)]
        done = through
    return segments


def gpt4all_segments(messages: list[dict[str, str]], eos: str) -> list[tuple[str, bool]]:
    segments: list[tuple[str, bool]] = []
    for message in messages:
        if message["role"] == "user":
            segments.append((message["content"] + "\n", False))
        elif message["role"] == "assistant":
            segments.append((message["content"] + eos, True))
    return segments


def encode(record: Record, tokenizer, template: str) -> Example:  # noqa: ANN001
    messages = [m.model_dump() for m in record.messages]
    if template == "chat":
        segments = chat_segments(tokenizer, messages)
    else:
        segments = gpt4all_segments(messages, tokenizer.eos_token)
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in segments:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    if template == "gpt4all" and tokenizer.bos_token_id is not None and getattr(tokenizer, "add_bos_token", False):
        ids, labels = [tokenizer.bos_token_id, *ids], [IGNORE, *labels]
    return Example(record.id, ids, labels)


def encode_all(records: list[Record], tokenizer, template: str, max_length: int,  # noqa: ANN001
               too_long: str) -> tuple[list[Example], EncodeStats]:
    """Encode every record; too-long ones are truncated or dropped, and counted."""
    stats = EncodeStats()
    examples = []
    for record in records:
        stats.records += 1
        example = encode(record, tokenizer, template)
        if len(example.input_ids) > max_length:
            if too_long == "drop":
                stats.dropped_too_long += 1
                continue
            stats.truncated += 1
            example = Example(example.id, example.input_ids[:max_length], example.labels[:max_length])
        if example.trained_tokens == 0:
            stats.dropped_no_target += 1
            continue
        examples.append(example)
        stats.sources[record.source] = stats.sources.get(record.source, 0) + 1
    if not examples:
        raise DataError(f"no trainable examples among {stats.records} records ({stats.dropped_too_long} over "
                        f"max_length, {stats.dropped_no_target} with no response tokens left)")
    return examples, stats


def split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded shuffle, validation gets ceil(fraction * n) (at least 1 when fraction > 0)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = min(len(examples) - 1, max(1, math.ceil(fraction * len(examples)))) if fraction > 0 else 0
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [examples[i] for i in train], [examples[i] for i in val]


def pack(examples: list[Example], max_length: int) -> list[list[Example]]:
    """Greedy first-fit in the given order: rows of at most max_length tokens."""
    rows: list[list[Example]] = []
    room: list[int] = []
    for example in examples:
        size = len(example.input_ids)
        for i, free in enumerate(room):
            if size <= free:
                rows[i].append(example)
                room[i] -= size
                break
        else:
            rows.append([example])
            room.append(max_length - size)
    return rows


def packed_batch(rows: list[list[Example]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of concatenated sequences; position ids restart per sequence; no attention mask (the model
    derives the block-diagonal mask from position ids). Short rows are padded with a dummy sequence."""
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids, labels, positions = [], [], []
    for row in rows:
        r_ids, r_labels, r_pos = [], [], []
        for example in row:
            r_ids += example.input_ids
            r_labels += [IGNORE, *example.labels[1:]]  # nothing predicts a sequence's first token
            r_pos += list(range(len(example.input_ids)))
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_labels + [IGNORE] * pad)
        positions.append(r_pos + list(range(pad)))
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "position_ids": torch.tensor(positions)}


def padded_batch(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """One sequence per row, right-padded, with an attention mask."""
    width = max(len(e.input_ids) for e in examples)
    pad = [width - len(e.input_ids) for e in examples]
    return {
        "input_ids": torch.tensor([e.input_ids + [pad_id] * p for e, p in zip(examples, pad, strict=True)]),
        "labels": torch.tensor([[IGNORE, *e.labels[1:]] + [IGNORE] * p for e, p in zip(examples, pad, strict=True)]),
        "attention_mask": torch.tensor([[1] * len(e.input_ids) + [0] * p for e, p in zip(examples, pad, strict=True)]),
    }


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]
    real_tokens: int  # tokens that are not padding
    trained_tokens: int  # tokens that carry loss (labels the model is scored on, after its one-token shift)


def epoch_batches(examples: list[Example], batch_size: int, max_length: int, packing: bool, pad_id: int,
                  seed: int, epoch: int) -> list[Batch]:
    """One epoch's batches, a deterministic function of (seed, epoch): what exact resume relies on."""
    order = list(examples)
    random.Random(seed * 1000 + epoch).shuffle(order)
    if packing:
        rows = pack(order, max_length)
        groups = [[e for row in rows[i : i + batch_size] for e in row] for i in range(0, len(rows), batch_size)]
        tensors = [packed_batch(rows[i : i + batch_size], pad_id) for i in range(0, len(rows), batch_size)]
    else:
        groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        tensors = [padded_batch(group, pad_id) for group in groups]
    return [Batch(t, sum(len(e.input_ids) for e in g), int((t["labels"][:, 1:] != IGNORE).sum()))
            for t, g in zip(tensors, groups, strict=True)]
