"""curate's parts at their edges: near-duplicate chains, duplicate_of roots, the hashed 13-gram index
against a plain string-set reference, the stratified map sample and the map.html size cap, spooled texts
read back by position in this process and in workers."""

from __future__ import annotations

import json
import pickle
import random
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.config import MinHashConfig
from pipeline.curate.decontaminate import NgramIndex, file_texts, words
from pipeline.curate.dedupe import near_duplicates
from pipeline.curate.maps import MapPoint, cosine_neighbours, project, stratified_sample, write_local_map
from pipeline.curate.spool import ITER_BLOCK, TextSpool
from pipeline.records import read_records, write_records
from tests.curate.test_curate_stage import curate, pair, removed_by

VOCAB = [f"w{i}" for i in range(5000)]


def text(rng: random.Random, n: int = 80) -> str:
    return " ".join(rng.choices(VOCAB, k=n))


def jaccard(a: str, b: str, n: int = 3) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = t.split()
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_a_chain_is_one_group_kept_by_its_first_record() -> None:
    """A ~ B ~ C with C far from A: C still goes, as a duplicate of A (the kept one), not of B."""
    rng = random.Random(1)
    a = text(rng, 200)
    b = " ".join(a.split()[:175] + rng.choices(VOCAB, k=25))  # the last 25 words replaced
    c = " ".join(rng.choices(VOCAB, k=25) + b.split()[25:])  # and then the first 25
    assert jaccard(a, b) > 0.75 and jaccard(b, c) > 0.75 and jaccard(a, c) < 0.6
    texts = [a, text(rng, 200), b, text(rng, 200), c]
    removed = near_duplicates(texts, MinHashConfig(workers=1, num_perm=256), 42)
    assert {position: found.kept for position, found in removed.items()} == {2: 0, 4: 0}


def test_duplicate_of_always_names_a_kept_record(tmp_path: Path) -> None:
    """X' is an exact copy of X; X is a near copy of Y: X' must point at Y, which survives."""
    rng = random.Random(2)
    y = text(rng)
    words_y = y.split()
    x = " ".join(words_y[:40] + ["changed"] + words_y[41:])
    records = [pair("Q", y), pair("Q", x), pair("Q", x.upper()), pair("Other", text(rng))]
    path = tmp_path / "p.jsonl"
    write_records(path, records)
    run, _ = curate(path, tmp_path, "curate.semantic.enabled=false", "curate.map.enabled=false",
                    "curate.filters.decontaminate.enabled=false")
    removed = removed_by(run)
    kept = {r.id for r in read_records(run.root / "curate" / "pairs.jsonl")}
    assert removed[records[2].id]["rule"] == "exact_duplicate" and removed[records[1].id]["rule"] == "near_duplicate"
    assert {row["duplicate_of"] for row in removed.values()} == {records[0].id} <= kept


def reference_first_overlaps(files: list[Path], texts: list[str], n: int) -> list[tuple[str, str] | None]:
    """The rule stated plainly: every n-gram string of the evaluation texts in a set; a text's first n-gram in it."""
    index: dict[str, str] = {}
    for file in files:
        for t in file_texts(file):
            w = words(t)
            for i in range(len(w) - n + 1):
                index.setdefault(" ".join(w[i : i + n]), file.name)
    results = []
    for t in texts:
        w = words(t)
        grams = (" ".join(w[i : i + n]) for i in range(len(w) - n + 1))
        results.append(next(((index[g], g) for g in grams if g in index), None))
    return results


def test_hashed_ngram_index_finds_what_the_plain_rule_finds(tmp_path: Path) -> None:
    rng = random.Random(3)
    evals = tmp_path / "eval"
    evals.mkdir()
    for name in ("a", "b"):
        rows = [{"ctx": text(rng, 30), "endings": [text(rng, 8), text(rng, 8)], "label": 0} for _ in range(50)]
        (evals / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = sorted(evals.glob("*.jsonl"))
    sources = [t for f in files for t in file_texts(f)]
    queries = []
    for i in range(400):
        q = text(rng, rng.randint(0, 60))
        if i % 4 == 0:  # plant a slice of an evaluation text (sometimes shorter than 13 words)
            src = rng.choice(sources).split()
            start = rng.randrange(max(1, len(src) - 13))
            q = f"{q} {' '.join(src[start : start + rng.choice([12, 13, 20])])} {text(rng, 5)}"
        queries.append(q.upper() if i % 7 == 0 else q)
    index = NgramIndex.from_files([f"{evals}/*.jsonl"], tmp_path, 13)
    expected = reference_first_overlaps(files, queries, 13)
    found = index.first_overlaps(queries)
    assert found == expected
    assert 50 < sum(hit is not None for hit in found) < 100  # the plant, minus the 12-word slices


def test_the_map_sample_is_stratified_seeded_and_keeps_small_strata() -> None:
    strata = [("big", "kept")] * 9000 + [("big", "removed")] * 900 + [("tiny", "kept")] * 30 + [("tiny", "removed")] * 3
    chosen = stratified_sample(strata, 1000, seed=7)
    assert chosen == sorted(chosen) and len(chosen) <= 1000
    counts = Counter(strata[i] for i in chosen)
    assert counts[("tiny", "removed")] == 3 and counts[("tiny", "kept")] == 20  # the minimum, all it has
    for key, size in ((("big", "kept"), 9000), (("big", "removed"), 900)):  # near their share of the whole
        assert abs(counts[key] / len(chosen) - size / len(strata)) < 0.02
    assert stratified_sample(strata, 1000, seed=7) == chosen != stratified_sample(strata, 1000, seed=8)
    assert stratified_sample(strata[:500], 1000, seed=7) == list(range(500))


def test_map_html_stays_under_its_cap(tmp_path: Path) -> None:
    rng = random.Random(4)
    points = [MapPoint(f"id{i}", "s", "kept" if i % 3 else "exact_duplicate", text(rng, 40), text(rng, 40),
                       rng.random(), rng.random(), i % 4) for i in range(3000)]
    shown = write_local_map(points, tmp_path, max_bytes=400_000)
    page = tmp_path / "map.html"
    assert page.stat().st_size <= 400_000 and 100 < shown < 3000
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000  # beside the page, nothing fetched
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in page.read_text()
    assert write_local_map(points[:200], tmp_path, max_bytes=5_000_000) == 200


def test_semantic_duplicates_above_the_exact_search_size_use_ivf_and_find_the_planted_pairs() -> None:
    import numpy as np

    from pipeline.config import SemanticConfig
    from pipeline.curate.dedupe import EXACT_SEARCH_UP_TO, semantic_duplicates

    rng = np.random.default_rng(5)
    n, planted = EXACT_SEARCH_UP_TO + 10_000, 300
    vectors = rng.normal(size=(n, 64)).astype(np.float32)
    originals = rng.choice(n - planted, planted, replace=False)
    copies = np.arange(n - planted, n)
    vectors[copies] = vectors[originals] + 0.15 * rng.normal(size=(planted, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    removed = semantic_duplicates(vectors.astype(np.float16)[:, None, :], SemanticConfig(threshold=0.95), seed=1)
    assert {position: found.kept for position, found in removed.items()} == dict(zip(copies.tolist(), originals.tolist()))


def test_spooled_texts_read_back_by_position_in_this_process_and_in_workers(tmp_path: Path) -> None:
    rng = random.Random(5)
    texts = [text(rng, rng.randint(0, 40)) + rng.choice(["", " café ☕", "\n\nzwei Zeilen"]) for _ in range(3 * ITER_BLOCK)]
    texts[7] = ""
    with TextSpool(tmp_path / "texts.spool") as spool:
        for t in texts:
            spool.append(t)
        spooled = spool.texts()
        assert len(spooled) == len(texts) and list(spooled) == texts and spooled[7] == "" and spooled[-1] == texts[-1]
        sparse = sorted(rng.sample(range(len(texts)), 500))  # read text by text: its span is mostly other texts
        assert list(spooled.subset(sparse)) == [texts[i] for i in sparse]
        window = spooled[100:5000]
        assert list(window[10:20]) == texts[110:120] and len(pickle.dumps(window)) < 100_000
        copies = texts[:3000] + [texts[i] + " extra" for i in range(1000)]
        spool.append("")  # the spool grows after a view was taken; the view still reads its own texts
        for t in copies:
            spool.append(t)
        tail = spool.texts()[len(texts) + 1 :]
        assert near_duplicates(tail, MinHashConfig(workers=2), 42) == near_duplicates(copies, MinHashConfig(workers=1), 42)
    assert not (tmp_path / "texts.spool").exists()


def test_map_neighbours_are_the_exact_cosine_ones_and_clusters_stay_apart() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 32)) * 4
    vectors = np.concatenate([c + rng.normal(size=(60, 32)) for c in centers]).astype(np.float32)
    neighbours, distances = cosine_neighbours(vectors, 5, seed=0)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = np.argsort(-(unit @ unit.T), axis=1, kind="stable")[:, :5]
    assert (neighbours[:, 0] == np.arange(len(vectors))).all() and np.allclose(distances[:, 0], 0, atol=1e-5)
    assert (np.sort(neighbours, axis=1) == np.sort(exact, axis=1)).all()
    coords = project(vectors, seed=0)
    centroids = np.stack([coords[i * 60:(i + 1) * 60].mean(axis=0) for i in range(3)])
    spread = max(np.linalg.norm(coords[i * 60:(i + 1) * 60] - centroids[i], axis=1).max() for i in range(3))
    gaps = [np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > spread  # each planted cluster is its own island
