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
from collections.abc import Sequence
from functools import cache
from pathlib import Path

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


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embed_texts(texts: Sequence[str], workers: int = 1, chunk: int = 5000) -> np.ndarray:
    """(len(texts), dimensions) unit vectors, stored as float16 (half of float32's memory; cosines move by
    ~1e-3 at most), computed by `workers` processes chunk by chunk."""
    out = np.empty((len(texts), static_model().dim), dtype=np.float16)
    jobs = [texts[start : start + chunk] for start in range(0, len(texts), chunk)]
    with tqdm(total=len(texts), desc="embed", unit="rec", disable=len(texts) <= 4 * chunk) as bar:
        for start, vectors in zip(range(0, len(texts), chunk), ordered_results(_embed_job, jobs, workers),
                                  strict=True):
            out[start : start + len(vectors)] = vectors
            bar.update(len(vectors))
    return out
