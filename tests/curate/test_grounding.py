"""curate's documents rules: answers their chunk does not support, and near-duplicate questions of one chunk."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.records import Record, read_records, write_records

CHUNK = ("The Quillon valve lets water into the pond. The Quillon valve opens when the pond drops below the "
         "marker stone, and closes again after forty minutes.")


def qa(question: str, answer: str, chunk: str | None = CHUNK, index: int = 0, sha: str = "a" * 64) -> Record:
    meta = {"finish_reason": "stop"}
    if chunk is not None:
        meta |= {"document": "valve.txt", "sha256": sha, "chunk": {"index": index, "start": 0, "end": len(chunk),
                                                                   "text": chunk}}
    return Record.create("garden", [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                         meta)


def test_ungrounded_answers_and_same_chunk_questions_go_with_their_reasons(tmp_path: Path) -> None:
    records = {
        "grounded": qa("When does the Quillon valve open?", "The Quillon valve opens when the pond drops below the "
                                                             "marker stone."),
        "invented": qa("What is the Quillon valve?", "A quillon is an ancient Egyptian device for fountains."),
        "repeat": qa("When does the Quillon valve open?!", "It opens when the pond drops below the marker stone."),
        "other_chunk": qa("When does the Quillon valve open?", "It opens below the marker stone.", index=1),
        "other_file": qa("When does the Quillon valve open?", "After forty minutes it closes.", sha="b" * 64),
        "different": qa("How long does the valve stay open?", "It closes again after forty minutes."),
        "no_chunk": qa("Tell me about ancient Egypt.", "Pyramids, pharaohs and the Nile.", chunk=None),
    }
    path = tmp_path / "pairs.jsonl"
    write_records(path, records.values())
    cfg = load_config(None, [f"curate.input={path}", f"run.runs_dir={tmp_path / 'runs'}",
                             "curate.filters.grounding.enabled=true", "curate.filters.decontaminate.enabled=false",
                             "curate.minhash.enabled=false", "curate.semantic.enabled=false", "curate.map.enabled=false"])
    run = RunDir(cfg.run_dir())
    execute(STAGES["curate"], cfg, run, force=True)
    removed = {row["id"]: row["removed"] for row in
               map(json.loads, (run.root / "curate" / "removed.jsonl").read_text().splitlines())}
    name = {record.id: key for key, record in records.items()}
    assert {name[i]: r["rule"] for i, r in removed.items()} == {"invented": "ungrounded",
                                                                 "repeat": "chunk_near_duplicate"}
    assert removed[records["invented"].id]["detail"] == (
        "1 of the answer's 5 content words are in its chunk (0.20 < 0.5)")  # only "quillon"
    assert removed[records["repeat"].id]["detail"] == (
        f"question 1.00 similar to {records['grounded'].id}'s, from the same chunk")
    kept = {r.id for r in read_records(run.root / "curate" / "pairs.jsonl")}
    assert {name[i] for i in kept} == {"grounded", "other_chunk", "other_file", "different", "no_chunk"}
