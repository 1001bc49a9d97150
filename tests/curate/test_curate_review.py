"""What dedupe may remove, and how a person reviews it: unrelated records are never duplicates, one prompt
answered twice is a duplicate only under its own rule, and report.md shows every dedupe rule's sampled
removals beside the records they duplicate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.curate_corpus import generate
from pipeline.artifacts import RunDir
from pipeline.records import read_records, write_records
from tests.curate.atlas_standin import AtlasStandIn
from tests.curate.test_curate_stage import curate, pair, planted, removed_by  # noqa: F401 - planted: fixture

DEDUPE = ("exact_duplicate", "near_duplicate", "semantic_duplicate", "prompt_duplicate")


def test_unrelated_sentence_records_lose_only_their_planted_copies(tmp_path: Path) -> None:
    """Alpaca-length records of 3-8 unrelated sentences (the shape whose averaged static vectors all sat
    near cosine 0.95): only planted exact and near copies go, each beside a member of its own group."""
    path = tmp_path / "unrelated.jsonl"
    plant = generate(400, path, "unrelated", seed=3)
    run, _ = curate(path, tmp_path, "curate.map.enabled=false", "curate.filters.decontaminate.enabled=false")
    line = {record.id: int(record.id[1:]) for record in read_records(path)}
    duplicates = {i: row for i, row in removed_by(run).items() if row["rule"] in DEDUPE}
    assert all(plant.group[line[i]] == plant.group[line[row["duplicate_of"]]] for i, row in duplicates.items())
    copied = {plant.group[n] for n in line.values() if plant.kind[n] in ("exact", "near", "chain")}
    members = Counter(plant.group[n] for n in line.values())
    assert len(copied) > 10
    assert Counter(plant.group[line[i]] for i in duplicates if plant.group[line[i]] in copied) == \
        {group: members[group] - 1 for group in copied}


def test_a_prompt_answered_twice_differently_is_kept_unless_its_rule_is_on(tmp_path: Path) -> None:
    prompt = "Suggest something to cook for dinner tonight."
    short = pair(prompt, "Make a vegetable stir-fry with rice: fry garlic, ginger, peppers and broccoli, add soy "
                         "sauce and serve hot.")
    long = pair(prompt, "Try a lentil soup. Soften an onion, a carrot and celery in olive oil, add red lentils, "
                        "cumin and stock, simmer for twenty minutes and finish with lemon juice and parsley.")
    other = pair("Name three rivers in Africa.", "The Nile, the Congo and the Niger.")
    path = tmp_path / "pairs.jsonl"
    write_records(path, [short, long, other])
    off = ("curate.map.enabled=false", "curate.filters.decontaminate.enabled=false")
    run, counts = curate(path, tmp_path, *off)
    assert removed_by(run) == {} and counts["kept"] == 3
    run, _ = curate(path, tmp_path, *off, "curate.prompt_duplicate.enabled=true")
    assert removed_by(run) == {long.id: {"rule": "prompt_duplicate", "detail": "same normalized prompt",
                                         "duplicate_of": short.id, "similarity": 1.0}}
    run, _ = curate(path, tmp_path, *off, "curate.prompt_duplicate.enabled=true", "curate.prompt_duplicate.keep=longest")
    assert {i: row["duplicate_of"] for i, row in removed_by(run).items()} == {short.id: long.id}
    assert [r.id for r in read_records(run.root / "curate" / "pairs.jsonl")] == [long.id, other.id]


def test_report_shows_each_dedupe_rules_sampled_removals_beside_their_originals(planted, tmp_path: Path) -> None:
    path, rec = planted
    extra = pair(rec["base0"].prompt, "A different answer altogether, about plants turning sunlight into sugar.")
    write_records(path, [*read_records(path), extra])
    run, _ = curate(path, tmp_path, "curate.prompt_duplicate.enabled=true")
    out = run.root / "curate"
    removed = removed_by(run)
    report = json.loads((out / "report.json").read_text())
    rules = [rule for rule in report["by_rule"] if rule in DEDUPE]
    assert sorted(rules) == sorted(DEDUPE)
    markdown = (out / "report.md").read_text()
    records = {r.id: r for r in read_records(path)}
    for rule in rules:
        rows = report["review"][rule]
        assert 1 <= len(rows) <= 10 and len(rows) == min(10, report["by_rule"][rule]["count"])
        section = markdown.split(f"## {rule}: ")[1].split("\n## ")[0]
        for row in rows:
            assert removed[row["id"]]["rule"] == rule and removed[row["id"]]["duplicate_of"] == row["duplicate_of"]
            assert row["similarity"] == removed[row["id"]]["similarity"] > 0
            kept = records[row["duplicate_of"]]
            assert row["kept"].startswith(kept.prompt.replace("\n", " ")[:40])
            assert row["removed"].startswith(records[row["id"]].prompt.replace("\n", " ")[:40])
            assert f"| {row['id']} | {row['duplicate_of']} | {row['similarity']:.3f} | " in section
    assert removed[extra.id] == {"rule": "prompt_duplicate", "detail": "same normalized prompt",
                                 "duplicate_of": rec["base0"].id, "similarity": 1.0}
    points = {p["id"]: p for p in map(json.loads, (out / "map_points.jsonl").read_text().splitlines())}
    paraphrase = points[rec["paraphrase"].id]
    assert paraphrase["duplicate_of"] == rec["capital"].id and paraphrase["kept_text"].startswith(rec["capital"].prompt)
    assert f"duplicate of {rec['capital'].id}" in (out / "map.html").read_text()


@pytest.mark.slow
def test_with_a_nomic_key_every_record_goes_to_atlas_with_its_outcome(planted, tmp_path: Path) -> None:
    """The real nomic client (the `atlas` extra) uploads to a stand-in Atlas API on 127.0.0.1 (its
    ATLAS_API_PATH setting): every record with its text, source, kept/removed, rule and duplicate_of."""
    path, rec = planted
    runs = tmp_path / "runs"
    with AtlasStandIn() as atlas:
        env = {**os.environ, "NOMIC_API_KEY": "nk-test-key", "ATLAS_API_PATH": atlas.url, "HOME": str(tmp_path)}
        subprocess.run([sys.executable, "-m", "pipeline", "curate", f"curate.input={path}", f"run.runs_dir={runs}",
                        f"curate.filters.decontaminate.files=[{tmp_path}/eval/*.jsonl]",
                        "curate.filters.length.min_response_chars=5", "--force"],
                       env=env, check=True, capture_output=True, text=True, timeout=300)
    run = next(runs.iterdir())
    removed = removed_by(RunDir(run))
    rows = {row["id"]: row for row in atlas.uploaded}
    assert set(rows) == {r.id for r in read_records(path)} and len(removed) == 10
    for record_id, row in rows.items():
        gone = removed.get(record_id)
        assert row["outcome"] == ("removed" if gone else "kept") and row["rule"] == (gone["rule"] if gone else "kept")
        assert row["duplicate_of"] == ((gone or {}).get("duplicate_of") or "null")  # nomic stores a null as "null"
    paraphrase = rows[rec["paraphrase"].id]
    assert paraphrase["text"].startswith(rec["paraphrase"].prompt) and paraphrase["source"] == "synthetic"
    assert paraphrase["duplicate_of"] == rec["capital"].id and paraphrase["similarity"] > 0.8
    assert len(atlas.index_requests) == 1 and "nk-test-key" not in (run / "curate" / "manifest.json").read_text()
