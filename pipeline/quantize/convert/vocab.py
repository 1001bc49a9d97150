"""Tokenizers into GGUF metadata: GPT-2-style byte-level BPE (with llama.cpp's name for its pre-tokenizer,
read off the tokenizer itself), SentencePiece and BERT's WordPiece; special tokens, add-BOS flags and the
chat template, so llama.cpp tokenizes and chats with the file alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from pipeline.quantize.convert.errors import ConversionError
from pipeline.quantize.convert.spm import add_sentencepiece_vocab


# Split regexes of byte-level BPE tokenizers as tokenizer.json stores them, and llama.cpp's name for each.
# Llama 3 and OpenAI's cl100k (DBRX, OLMo 2's dolma2 tokenizer) share one regex: digits in groups of up to
# three. Llama 3's tokenizer.json also sets `ignore_merges` (a whole-word vocabulary hit wins over merges),
# which llama.cpp ties to the name "llama-bpe"; cl100k-style tokenizers without it are "dbrx".
# Qwen2 / 2.5 / 3 split every digit on its own.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# OpenAI's o200k (Phi-4-mini, GPT-OSS): case-aware words with their contractions, digit groups of three.
O200K_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
               r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(use_regex: bool) -> dict[str, Any]:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def split_then_bytes(pattern: str) -> dict[str, Any]:
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}, byte_level(False)]}


# llama.cpp's pre-tokenizer name -> the tokenizer.json pipeline (and model.ignore_merges) that splits text the same
# way: the inverse of pre_tokenizer(), for tokenizers rebuilt from a GGUF (transformers' GGUF loader writes
# GPT-2's plain ByteLevel for all of them, so a dequantized SmolLM2 would stop splitting digits one by one).
PIPELINES: dict[str, tuple[dict[str, Any], bool]] = {
    "llama-bpe": (split_then_bytes(LLAMA3_SPLIT), True),
    "dbrx": (split_then_bytes(LLAMA3_SPLIT), False),
    "qwen2": (split_then_bytes(QWEN2_SPLIT), False),
    "gpt-4o": (split_then_bytes(O200K_SPLIT), False),
    "smollm": ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                       byte_level(True)]}, False),
    "gpt-2": (byte_level(True), False),
}


def with_pre_tokenizer(tokenizer_json: dict[str, Any], name: str) -> dict[str, Any]:
    """tokenizer.json whose pipeline splits text as llama.cpp's pre-tokenizer `name` does (unchanged when it
    already does, or when `name` is not in PIPELINES)."""
    if name not in PIPELINES or pre_tokenizer(tokenizer_json, family_default="") == name:
        return tokenizer_json
    pipeline, ignore_merges = PIPELINES[name]
    return {**tokenizer_json, "pre_tokenizer": pipeline,
            "model": {**tokenizer_json["model"], "ignore_merges": ignore_merges}}


def split_pre_tokenizer(pattern: str, ignore_merges: bool) -> str | None:
    """llama.cpp's name for a [Split(pattern), ByteLevel] pipeline with this ignore_merges (read off PIPELINES),
    or None when llama.cpp is not known to split that way."""
    for name, (pipeline, merges) in PIPELINES.items():
        first = pipeline.get("pretokenizers", [{}])[0]
        if first.get("type") == "Split" and first["pattern"]["Regex"] == pattern and merges == ignore_merges:
            return name
    return None


def pre_tokenizer(tokenizer_json: dict[str, Any], family_default: str | None = "default") -> str:
    """llama.cpp's pre-tokenizer name for a byte-level BPE, read off the tokenizer's own pipeline; the
    architecture's usual one when the pipeline is not recognized, or a refusal when it has none."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["Split", "ByteLevel"] and steps[1].get("use_regex") is False and not steps[0].get("invert"):
        pattern = (steps[0].get("pattern") or {}).get("Regex", "")
        ignore_merges = bool((tokenizer_json.get("model") or {}).get("ignore_merges"))
        if name := split_pre_tokenizer(pattern, ignore_merges):
            return name
    elif kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"  # digits split one by one, then GPT-2's regex (SmolLM, StarCoder-style)
    elif kinds[:2] == ["Punctuation", "ByteLevel"]:
        return "falcon"  # Falcon's tokenizer: punctuation runs, byte-level, digit groups of three
    elif kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "mpt" if family_default == "mpt" else "gpt-2"  # the same regex; llama.cpp names MPT's apart
    if family_default is None:
        raise ConversionError(f"pre_tokenizer {json.dumps(pre)[:300]} is not one llama.cpp is known "
                              "to split the same way (Llama 3, cl100k, Qwen2, o200k, SmolLM, GPT-2, Falcon); a file "
                              "written with it would tokenize differently from the model's own tokenizer")
    return family_default


def add_vocab(w: gguf.GGUFWriter, model_dir: Path, n_vocab: int | None, family_pre: str | None = "default") -> None:
    """Tokens with their types, merges or scores, special token ids and the chat template."""
    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text()) \
        if (model_dir / "tokenizer.json").is_file() else None
    model = (tokenizer_json or {}).get("model", {})
    if (model_dir / "tokenizer.model").is_file() or (model.get("type") == "BPE" and model.get("byte_fallback")):
        add_sentencepiece_vocab(w, model_dir, tokenizer_json, n_vocab)
    elif tokenizer_json is None:
        raise ConversionError(f"{model_dir}: no tokenizer.json or tokenizer.model; save the tokenizer with the model")
    elif model.get("type") == "WordPiece":
        add_wordpiece_vocab(w, model_dir)
    else:
        add_bpe_vocab(w, model_dir, tokenizer_json, n_vocab, family_pre)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.add_to_gguf(w, quiet=True)


def add_bpe_vocab(w: gguf.GGUFWriter, model_dir: Path, tokenizer_json: dict[str, Any], n_vocab: int | None,
                  family_pre: str | None) -> None:
    from transformers import AutoTokenizer

    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE":
        raise ConversionError(f"{model_dir / 'tokenizer.json'}: only byte-level BPE, SentencePiece or WordPiece "
                              f"tokenizers are supported (found {model.get('type')})")
    try:
        pre = pre_tokenizer(tokenizer_json, family_pre)
    except ConversionError as exc:
        raise ConversionError(f"{model_dir / 'tokenizer.json'}: {exc}") from None
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    size = n_vocab or len(by_id)
    tokens, types = [], []
    for i in range(size):
        if i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)


def add_wordpiece_vocab(w: gguf.GGUFWriter, model_dir: Path) -> None:
    """BERT's WordPiece in llama.cpp's form: a word-initial piece gets "\u2581" in front, a "##" continuation
    loses its "##"; [bracketed] special tokens stay as they are."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_tokens)
    tokens, types = [], []
    for i in range(len(by_id)):
        token = by_id[i]
        if token in special or (token.startswith("[") and token.endswith("]")):
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in special else gguf.TokenType.UNUSED)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
