"""Masking, packing and batching on the real tokenizer and a tiny random llama."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.records import Record
from pipeline.train.data import IGNORE, DataError, encode, encode_all, pack, packed_batch, padded_batch, split

CONVERSATION = Record.create("t", [
    {"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."},
    {"role": "user", "content": "And three plus three?"}, {"role": "assistant", "content": "Six, of course."}])


@pytest.fixture(scope="module")
def tokenizer(bundled_hf: Path):  # noqa: ANN201
    return AutoTokenizer.from_pretrained(bundled_hf)


def labelled_text(tokenizer, example) -> str:  # noqa: ANN001
    return tokenizer.decode([t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE])


def test_chat_template_masks_everything_but_assistant_turns(tokenizer) -> None:  # noqa: ANN001
    example = encode(CONVERSATION, tokenizer, "chat")
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(
        [m.model_dump() for m in CONVERSATION.messages], tokenize=False)
    assert labelled_text(tokenizer, example) == "Four.<|im_end|>\nSix, of course.<|im_end|>\n"
    for label, token in zip(example.labels, example.input_ids, strict=True):
        assert label in (IGNORE, token)


def test_gpt4all_format_is_prompt_newline_response_eos(tokenizer) -> None:  # noqa: ANN001
    example = encode(CONVERSATION, tokenizer, "gpt4all")
    eos = tokenizer.eos_token
    assert tokenizer.decode(example.input_ids) == f"What is two plus two?\nFour.{eos}And three plus three?\nSix, of course.{eos}"
    assert labelled_text(tokenizer, example) == f"Four.{eos}Six, of course.{eos}"


def test_too_long_records_are_truncated_or_dropped_and_counted(tokenizer) -> None:  # noqa: ANN001
    long = Record.create("t", [{"role": "user", "content": "word " * 10}, {"role": "assistant", "content": "ok " * 80}])
    examples, stats = encode_all([CONVERSATION, long], tokenizer, "chat", 80, "truncate")
    assert len(examples) == 2 and stats.truncated == 1 and len(examples[1].input_ids) == 80
    examples, stats = encode_all([CONVERSATION, long], tokenizer, "chat", 80, "drop")
    assert len(examples) == 1 and stats.dropped_too_long == 1
    with pytest.raises(DataError, match="no trainable examples among 1 records \\(1 over max_length"):
        encode_all([long], tokenizer, "chat", 80, "drop")


def test_split_is_seeded_and_disjoint() -> None:
    from pipeline.train.data import Example

    examples = [Example(str(i), [1, 2], [IGNORE, 2]) for i in range(40)]
    train, val = split(examples, 0.05, 42)
    assert len(val) == 2 and len(train) == 38 and not {e.id for e in val} & {e.id for e in train}
    assert split(examples, 0.05, 42) == (train, val) and split(examples, 0.05, 7)[1] != val


def test_packed_loss_equals_padded_loss_and_sequences_do_not_interact(tokenizer, tiny_llama: Path) -> None:  # noqa: ANN001
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    records = [CONVERSATION] + [Record.create("t", [{"role": "user", "content": f"Question {i}: " + "x " * i},
                                                    {"role": "assistant", "content": "Answer " * (i + 1)}])
                                for i in range(1, 5)]
    examples = [encode(r, tokenizer, "chat") for r in records]
    rows = pack(examples, 512)
    assert len(rows) == 1  # everything fits one row
    with torch.no_grad():
        packed = model(**packed_batch(rows, tokenizer.pad_token_id), use_cache=False)
        padded = model(**padded_batch(examples, tokenizer.pad_token_id))
        alone = model(input_ids=torch.tensor([examples[2].input_ids])).logits[0]
    assert packed.loss.item() == pytest.approx(padded.loss.item(), abs=1e-5)
    start = sum(len(e.input_ids) for e in examples[:2])
    inside = packed.logits[0, start : start + len(examples[2].input_ids)]
    assert torch.allclose(inside, alone, atol=1e-4)  # the third sequence sees nothing of the first two
