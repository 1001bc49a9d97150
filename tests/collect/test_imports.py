"""Import sources: existing pairs in every known shape become records, with no teacher call."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.collect.imports import import_records
from pipeline.collect.sources import SourceError
from pipeline.config import ImportSource, load_config
from pipeline.pairs import BadRowError
from pipeline.records import Record, read_records

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"

GPT4ALL_ROWS = [{"prompt": "What is rain?", "response": "Water falling from clouds.", "source": "unified_chip2"},
                {"prompt": "Name a prime.", "response": "Seven.", "source": "stackoverflow"}]
ALPACA_ROWS = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
               {"instruction": "Say hi.", "input": "", "output": "Hi!"}]
DOLLY_ROWS = [{"instruction": "Who wrote Hamlet?", "context": "", "response": "Shakespeare.", "category": "open_qa"},
              {"instruction": "Summarize.", "context": "Cats sleep a lot.", "response": "Cats nap.",
               "category": "summarization"}]
SHAREGPT_ROWS = [{"id": "a1", "conversations": [
    {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
    {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye."}]}]
OPENAI_ROWS = [{"messages": [{"role": "developer", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Hello there."}]}]
OPENAI_PARTS = [{"messages": [{"role": "user", "content": "Hi"},
                              {"role": "assistant", "content": [{"type": "text", "text": "Hello "},
                                                                {"type": "text", "text": "there."}]}]}]


def write_jsonl(path: Path, rows: list[dict], compress: bool = False) -> Path:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def imported(tmp_path: Path, **source: object) -> list[Record]:
    src = ImportSource.model_validate({"type": "import", "name": "test", **source})
    return list(import_records(src, tmp_path))


def turns(record: Record) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in record.messages]


def test_gpt4all_jsonl_keeps_each_rows_source(tmp_path: Path) -> None:
    records = imported(tmp_path, path=str(write_jsonl(tmp_path / "g.jsonl", GPT4ALL_ROWS)))
    assert [r.source for r in records] == ["unified_chip2", "stackoverflow"]
    assert turns(records[0]) == [("user", "What is rain?"), ("assistant", "Water falling from clouds.")]
    assert records[0].id == Record.create("unified_chip2", [m.model_dump() for m in records[0].messages]).id


def test_alpaca_gzip_jsonl_joins_input_after_the_instruction(tmp_path: Path) -> None:
    records = imported(tmp_path, path=str(write_jsonl(tmp_path / "a.jsonl.gz", ALPACA_ROWS, compress=True)))
    assert [turns(r)[0][1] for r in records] == ["Add the numbers.\n\n2 and 3", "Say hi."]
    assert {r.source for r in records} == {"test"}  # no source column: the import's name


def test_dolly_jsonl_and_sharegpt_json_array_and_openai_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dolly = imported(tmp_path, path=str(write_jsonl(tmp_path / "d.jsonl", DOLLY_ROWS)))
    assert turns(dolly[1]) == [("user", "Summarize.\n\nCats sleep a lot."), ("assistant", "Cats nap.")]
    (tmp_path / "s.json").write_text(json.dumps(SHAREGPT_ROWS))
    (share,) = imported(tmp_path, path=str(tmp_path / "s.json"))
    assert [role for role, _ in turns(share)] == ["system", "user", "assistant", "user", "assistant"]
    pq.write_table(pa.Table.from_pylist(OPENAI_ROWS), tmp_path / "o.parquet")
    (chat,) = imported(tmp_path, path=str(tmp_path / "o.parquet"))
    assert turns(chat) == [("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello there.")]
    (parts,) = imported(tmp_path, path=str(write_jsonl(tmp_path / "parts.jsonl", OPENAI_PARTS)))
    assert turns(parts)[-1] == ("assistant", "Hello there.")


def test_saved_dataset_folder_and_local_hub_layout_folder(tmp_path: Path) -> None:
    import datasets

    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(GPT4ALL_ROWS)}).save_to_disk(str(saved))
    records = imported(tmp_path, dataset=str(saved), split="train")
    assert [r.source for r in records] == ["unified_chip2", "stackoverflow"]

    hub = tmp_path / "hub" / "data"  # how a hub dataset repo lays out its Parquet shards
    hub.mkdir(parents=True)
    datasets.Dataset.from_list(ALPACA_ROWS * 3).to_parquet(str(hub / "train-00000-of-00001.parquet"))
    records = imported(tmp_path, dataset=str(hub.parent), split="train", limit=4)
    assert len(records) == 4 and turns(records[1])[1] == ("assistant", "Hi!")
    streamed = imported(tmp_path, dataset=str(hub.parent), split="train", streaming=True, limit=4)
    assert streamed == records


def test_field_mapping_overrides_with_named_and_detected_format(tmp_path: Path) -> None:
    rows = [{"question": "Why?", "answer": {"text": "Because."}, "origin": "faq"}]
    path = str(write_jsonl(tmp_path / "m.jsonl", rows))
    for fmt in ("gpt4all", "auto"):
        (record,) = imported(tmp_path, path=path, format=fmt, fields={"prompt": "question", "response": "answer.text"},
                             source_field="origin")
        assert turns(record) == [("user", "Why?"), ("assistant", "Because.")] and record.source == "faq"
    with pytest.raises(SourceError, match="fields: question not in shape 'alpaca'"):
        imported(tmp_path, path=path, format="alpaca", fields={"question": "q"})


def test_bad_rows_name_file_line_and_column_or_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GPT4ALL_ROWS[0]) + "\n\n" + json.dumps({"prompt": "No answer"}) + "\n"
                    + "{broken\n" + json.dumps({"prompt": "ok?", "response": 3}) + "\n" + json.dumps(GPT4ALL_ROWS[1]) + "\n")
    with pytest.raises(BadRowError, match=rf"^{path}:3: response: missing$"):
        imported(tmp_path, path=str(path))
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"a": 1}])
    with pytest.raises(BadRowError, match=rf"^{odd}:1: \(row\): no known shape fits columns a \(expected one of"):
        imported(tmp_path, path=str(odd))
    share = write_jsonl(tmp_path / "s.jsonl", [{"conversations": [{"from": "robot", "value": "x"}]}])
    with pytest.raises(BadRowError, match=r"s.jsonl:1: conversations.0.from: speaker 'robot'"):
        imported(tmp_path, path=str(share))

    overrides = [f"run.runs_dir={tmp_path / 'runs'}",
                 f'collect.sources=[{{type: import, name: mixed, path: "{path}", skip_bad: true}}]']
    cfg = load_config(None, overrides)
    manifest, _ = execute(STAGES["collect"], cfg, RunDir(cfg.run_dir()), force=True)
    assert manifest.counts["imported"] == manifest.counts["records"] == 2
    assert manifest.counts["bad_rows_skipped"] == 3 and manifest.counts["requests_sent"] == 0
    bad = [json.loads(line) for line in (cfg.run_dir() / "collect" / "bad_rows.jsonl").read_text().splitlines()]
    assert [b["where"] for b in bad] == [f"{path}:3", f"{path}:4", f"{path}:5"]
    assert "response: expected str, got int" in bad[2]["reason"]


def test_imports_only_run_starts_no_teacher_and_a_mixed_run_imports_first(tmp_path: Path) -> None:
    # base_url points at a closed port: any teacher call would fail the run.
    overrides = [f"run.runs_dir={tmp_path / 'runs'}", "collect.teacher.base_url=http://127.0.0.1:9/v1",
                 "collect.teacher.max_retries=0",
                 '''collect.sources=[{type: import, name: alpaca, path: "{data_dir}/instruct/alpaca_5000_subset.json.gz",
                    format: alpaca, limit: 25}]''', f"data_dir={DATA}"]
    cfg = load_config(None, overrides)
    manifest, _ = execute(STAGES["collect"], cfg, RunDir(cfg.run_dir()), force=True)
    records = list(read_records(cfg.run_dir() / "collect" / "pairs.jsonl"))
    assert len(records) == 25 == manifest.counts["imported"] and manifest.counts["prompts"] == 0
    assert not (cfg.run_dir() / "collect" / "teacher.log").exists()
    assert all(r.source == "alpaca" and r.messages[-1].role == "assistant" for r in records)


def test_import_config_needs_exactly_one_origin() -> None:
    with pytest.raises(Exception, match="exactly one of path"):
        load_config(None, ['collect.sources=[{type: import, name: x}]'])
    with pytest.raises(Exception, match="exactly one of path"):
        load_config(None, ['collect.sources=[{type: import, name: x, path: a.jsonl, dataset: b/c}]'])
