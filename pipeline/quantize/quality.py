"""Quantization quality: perplexity on held-out text, and top-1 next-token agreement with the HF model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.rowfiles import iter_rows


@dataclass
class Scores:
    """Per predicted token: negative log-likelihood of the true next token, and the top-1 guess."""

    nll: np.ndarray
    top1: np.ndarray

    @property
    def perplexity(self) -> float:
        return float(np.exp(self.nll.mean()))


def read_texts(path: Path, field: str, limit_chars: int) -> str:
    """Text of `field` from a JSON array or JSONL file (plain or .gz), up to about `limit_chars`."""
    rows = []
    for row in iter_rows(path):
        if row.error:
            raise ValueError(f"{row.where}: {row.error}")
        if isinstance(row.data, dict):
            rows.append(row.data)
    texts, size = [], 0
    for row in reversed(rows):  # the end of the file: least likely to overlap what a recipe trains on
        if isinstance(row.get(field), str) and row[field].strip():
            texts.append(row[field].strip())
            size += len(texts[-1])
            if size >= limit_chars:
                break
    if not texts:
        raise ValueError(f"{path}: no text in field {field!r}")
    return "\n\n".join(texts)


def windows(tokens: list[int], size: int) -> list[list[int]]:
    return [tokens[i : i + size] for i in range(0, len(tokens) - size + 1, size)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def score(logits: np.ndarray, window: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """NLL of tokens 1..n-1 given their prefixes, and the argmax at positions 0..n-2."""
    logp = log_softmax(logits[:-1].astype(np.float64))
    targets = np.array(window[1:])
    return -logp[np.arange(len(targets)), targets], logits[:-1].argmax(axis=-1)


def gguf_scores(path: Path, chunks: list[list[int]], threads: int | None = None) -> Scores:
    import llama_cpp

    llama = llama_cpp.Llama(str(path), n_ctx=len(chunks[0]), n_batch=len(chunks[0]), logits_all=True,
                            n_threads=threads, verbose=False)
    nll, top1 = [], []
    for chunk in chunks:
        llama.reset()
        llama.eval(chunk)
        n, t = score(np.array(llama.scores[: len(chunk)]), chunk)
        nll.append(n)
        top1.append(t)
    llama.close()
    return Scores(np.concatenate(nll), np.concatenate(top1))


def hf_scores(model_dir: Path, chunks: list[list[int]]) -> Scores:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    nll, top1 = [], []
    with torch.inference_mode():
        for chunk in chunks:
            logits = model(torch.tensor([chunk])).logits[0].numpy()
            n, t = score(logits, chunk)
            nll.append(n)
            top1.append(t)
    return Scores(np.concatenate(nll), np.concatenate(top1))
