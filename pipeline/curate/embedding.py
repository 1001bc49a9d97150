"""Sentence vectors for curation at scale: a static model2vec embedding distilled from the bundled
all-MiniLM-L6-v2.

Distillation runs MiniLM once over its own vocabulary (~30k tokens, about a minute on 2 cores) and keeps
one PCA-reduced vector per token; a text's vector is then the mean of its tokens' vectors, tens of
thousands of texts per second instead of ~9 with the transformer. The model is built on first use and
cached in $PIPELINE_CACHE (default ~/.cache/gpt4all-pipeline); nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.curate.pool import ordered_results

DIMENSIONS = 256


def cache_dir() -> Path:
    return Path(os.environ.get("PIPELINE_CACHE", Path.home() / ".cache" / "gpt4all-pipeline"))


@cache
def static_model(dimensions: int = DIMENSIONS):  # noqa: ANN201 - a model2vec StaticModel
    """The distilled model, built and cached on first use."""
    from model2vec import StaticModel

    folder = cache_dir() / f"model2vec-all-MiniLM-L6-v2-{dimensions}"
    if not (folder / "config.json").is_file():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from model2vec.distill import distill_from_model
        from transformers import AutoModel, AutoTokenizer

        from runtime.embed import bundled_embedding_model

        source = bundled_embedding_model()
        print(f"distilling a static embedding model from {source} (once; cached in {folder})", flush=True)
        model = distill_from_model(AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source),
                                   pca_dims=dimensions, device="cpu")
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return StaticModel.from_pretrained(str(folder))


def _embed_job(texts: Sequence[str]) -> np.ndarray:
    model = static_model()
    # model2vec's own process pool cannot start inside a pool worker, and is not needed beside ours
    vectors = model.encode(list(texts), show_progress_bar=False, use_multiprocessing=False)
    return unit_rows(vectors).astype(np.float16)


def _embed_parts_job(job: tuple[Sequence[str], np.ndarray]) -> np.ndarray:
    texts, splits = job
    cut = [(text[:k], text[k + 1 :]) for text, k in zip(texts, splits.tolist(), strict=True)]
    return np.stack([_embed_job([pair[part] for pair in cut]) for part in (0, 1)], axis=1)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row (the last axis) scaled to length 1 (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def embed_parts(texts: Sequence[str], splits: np.ndarray, workers: int = 1, chunk: int = 5000) -> np.ndarray:
    """(len(texts), 2, dimensions) float16 unit vectors of each text's two parts: the characters before its
    split (the prompt) and those after the one that follows it (the answer)."""
    jobs = [(texts[start : start + chunk], splits[start : start + chunk]) for start in range(0, len(texts), chunk)]
    return _embedded(_embed_parts_job, jobs, (len(texts), 2, static_model().dim), workers, chunk)


def centre(vectors: np.ndarray, reference: np.ndarray | None = None, weight: int = 0, chunk: int = 50_000) -> None:
    """Subtract the mean vector and rescale every row to length 1, in place (float16 rows, chunk by chunk).

    Averaged token vectors share one direction, so unrelated long texts sit at cosines near 0.9; without it
    they sit near 0. The mean is the rows' own, shrunk towards `reference` as if it were `weight` more rows
    (a small set's own mean would cancel the very similarity it should show)."""
    n = len(vectors)
    mean = vectors.astype(np.float32).sum(axis=0) if n <= chunk else sum(
        vectors[i : i + chunk].astype(np.float32).sum(axis=0) for i in range(0, n, chunk))
    if reference is not None and weight:
        mean = mean + weight * reference
    mean = mean / max(n + (weight if reference is not None else 0), 1)
    for start in range(0, n, chunk):
        part = vectors[start : start + chunk]
        part[:] = unit_rows(part.astype(np.float32) - mean).astype(vectors.dtype)


REFERENCE_PAIRS = "instruct/alpaca_5000_subset.json.gz"  # under data_dir


def reference_mean(data_dir: Path) -> np.ndarray | None:
    """(2, dimensions): the mean prompt and response vectors of the bundled Alpaca pairs (cached beside the
    model), or None when data_dir has no such file."""
    source = data_dir / REFERENCE_PAIRS
    cached = cache_dir() / f"alpaca-5000-mean-{static_model().dim}.npy"
    if cached.is_file():
        return np.load(cached)
    if not source.is_file():
        return None
    import gzip
    import json

    rows = json.load(gzip.open(source, "rt"))
    texts = [row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "") + "\n" + row["output"]
             for row in rows]
    splits = np.array([len(t) - len(row["output"]) - 1 for t, row in zip(texts, rows, strict=True)])
    mean = embed_parts(texts, splits).astype(np.float32).mean(axis=0)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, mean)
    return mean


def embed_texts(texts: Sequence[str], workers: int = 1, chunk: int = 5000) -> np.ndarray:
    """(len(texts), dimensions) unit vectors, stored as float16 (half of float32's memory; cosines move by
    ~1e-3 at most), computed by `workers` processes chunk by chunk."""
    jobs = [texts[start : start + chunk] for start in range(0, len(texts), chunk)]
    return _embedded(_embed_job, jobs, (len(texts), static_model().dim), workers, chunk)


def _embedded(job: Callable[[Any], np.ndarray], jobs: list[Any], shape: tuple[int, ...], workers: int,
              chunk: int) -> np.ndarray:
    """float16 rows of `shape` from `jobs` of `chunk` records each, run by `workers` processes in order."""
    out = np.empty(shape, dtype=np.float16)
    with tqdm(total=shape[0], desc="embed", unit="rec", disable=shape[0] <= 4 * chunk) as bar:
        for start, vectors in zip(range(0, shape[0], chunk), ordered_results(job, jobs, workers), strict=True):
            out[start : start + len(vectors)] = vectors
            bar.update(len(vectors))
    return out
