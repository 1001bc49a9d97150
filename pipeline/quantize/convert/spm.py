"""SentencePiece vocabularies (LLaMA 1/2, Mistral, Gemma, Phi-3) in llama.cpp's `llama` tokenizer form: each
token with a score (llama.cpp merges the adjacent pair whose joined text has the highest score), its type
(normal, unknown, control, user-defined, unused, byte) and whether a space is put before the text.

Read from `tokenizer.model` (the SentencePiece proto) when present, else from a SentencePiece-style
`tokenizer.json` (BPE with byte fallback: what transformers saves, and all a model dequantized from a GGUF
has). There the merge list stands in for the scores: a token made by an earlier merge scores higher, so
llama.cpp joins pairs in the order the BPE model would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from pipeline.quantize.convert.errors import ConversionError

SPACE = "\u2581"  # SentencePiece's visible space


@dataclass
class Pieces:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    add_space_prefix: bool


def from_model_file(path: Path) -> Pieces:
    """The proto as SentencePiece wrote it: its own scores and piece types (gguf's TokenType numbers are
    SentencePiece's), and whether its normalizer adds a dummy prefix."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ConversionError(f"{path}: not a SentencePiece model ({exc})") from None
    if proto.trainer_spec.model_type not in (proto.trainer_spec.BPE, proto.trainer_spec.UNIGRAM):
        raise ConversionError(f"{path}: SentencePiece model_type {proto.trainer_spec.model_type} is not BPE or "
                              "unigram, which llama.cpp's tokenizer reproduces")
    return Pieces([p.piece for p in proto.pieces], [p.score for p in proto.pieces], [int(p.type) for p in proto.pieces],
                  proto.normalizer_spec.add_dummy_prefix)


def space_prefix(tokenizer_json: dict[str, Any], where: Path) -> bool:
    """Whether the tokenizer puts "▁" before the text, read off its normalizer / pre-tokenizer; a pipeline
    llama.cpp would not reproduce (word splitting, other normalizations) is refused."""
    def steps(part: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
        if not part:
            return []
        return part[key] if part.get("type") == "Sequence" else [part]

    normalizer = steps(tokenizer_json.get("normalizer"), "normalizers")
    pre = steps(tokenizer_json.get("pre_tokenizer"), "pretokenizers")
    prefix = False
    for step in normalizer:
        if step == {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}:
            continue
        if step.get("type") == "Prepend" and step.get("prepend") == SPACE:
            prefix = True
            continue
        raise ConversionError(f"{where}: normalizer step {json.dumps(step)} is not one llama.cpp reproduces")
    for step in pre:
        if step.get("type") == "Metaspace" and not step.get("split", True):
            prefix = prefix or step.get("prepend_scheme", "always") != "never"
        elif step.get("type") == "Split" and step.get("pattern") == {"String": " "} and normalizer:
            continue  # spaces are already "▁" when this runs: it never splits
        else:
            raise ConversionError(f"{where}: pre_tokenizer step {json.dumps(step)} is not one llama.cpp reproduces")
    return prefix


def merge_scores(model: dict[str, Any], size: int, vocab: dict[str, int]) -> list[float]:
    """Score = minus the rank of the first merge that makes the token; tokens no merge makes score 0."""
    scores = [0.0] * size
    made: set[int] = set()
    for rank, merge in enumerate(model.get("merges", [])):
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        token = vocab.get(left + right)
        if token is not None and token not in made:
            made.add(token)
            scores[token] = -float(rank + 1)
    return scores


def from_tokenizer_json(data: dict[str, Any], path: Path, n_vocab: int | None) -> Pieces:
    """A SentencePiece-style tokenizer.json (BPE with byte fallback) as llama.cpp's SentencePiece tokens."""
    model = data.get("model", {})
    vocab: dict[str, int] = model.get("vocab", {})
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    size = max([n_vocab or 0, len(vocab), *(i + 1 for i in added)])
    tokens, types = [f"[PAD{i}]" for i in range(size)], [int(gguf.TokenType.UNUSED)] * size
    for token, i in vocab.items():
        tokens[i] = token
        is_byte = len(token) == 6 and token.startswith("<0x") and token.endswith(">")
        types[i] = int(gguf.TokenType.BYTE if is_byte else gguf.TokenType.NORMAL)
    if (unk := model.get("unk_token")) in vocab:
        types[vocab[unk]] = int(gguf.TokenType.UNKNOWN)
    for i, token in added.items():
        tokens[i] = token["content"]
        types[i] = int(gguf.TokenType.CONTROL if token["special"] else gguf.TokenType.USER_DEFINED)
    return Pieces(tokens, merge_scores(model, size, vocab), types, space_prefix(data, path))


def add_sentencepiece_vocab(w: gguf.GGUFWriter, model_dir: Path, tokenizer_json: dict[str, Any] | None,
                            n_vocab: int | None) -> None:
    """From tokenizer.model when present, else from the (already parsed) SentencePiece-style tokenizer.json."""
    if (model_dir / "tokenizer.model").is_file() or tokenizer_json is None:
        pieces = from_model_file(model_dir / "tokenizer.model")
        added_tokens_from_hf(pieces, model_dir, n_vocab)
    else:
        pieces = from_tokenizer_json(tokenizer_json, model_dir / "tokenizer.json", n_vocab)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(pieces.tokens)
    w.add_token_scores(pieces.scores)
    w.add_token_types(pieces.types)
    w.add_add_space_prefix(pieces.add_space_prefix)


def added_tokens_from_hf(pieces: Pieces, model_dir: Path, n_vocab: int | None) -> None:
    """Tokens the HF tokenizer adds to the proto's (chat markers, padding to the model's vocab_size)."""
    size = max(n_vocab or 0, len(pieces.tokens))
    missing = size - len(pieces.tokens)
    pieces.tokens += [f"[PAD{i}]" for i in range(len(pieces.tokens), size)]
    pieces.scores += [0.0] * missing
    pieces.types += [int(gguf.TokenType.UNUSED)] * missing
    config = model_dir / "tokenizer_config.json"
    decoder = json.loads(config.read_text()).get("added_tokens_decoder", {}) if config.is_file() else {}
    for key, token in decoder.items():
        i = int(key)
        if i < size and pieces.types[i] not in (gguf.TokenType.UNKNOWN, gguf.TokenType.BYTE):
            pieces.tokens[i] = token["content"]
            pieces.types[i] = int(gguf.TokenType.CONTROL if token.get("special") else gguf.TokenType.USER_DEFINED)
