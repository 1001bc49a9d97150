import json
from pathlib import Path

import pytest

from pipeline.records import Record, RecordError, read_records, write_records


def pair(prompt: str, answer: str, source: str = "test") -> Record:
    return Record.create(source, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                         meta={"teacher": "t", "finish_reason": "stop"})


def test_id_is_stable_under_whitespace_and_depends_on_source_and_text() -> None:
    a = pair("What is 2+2?", "4")
    assert a.id == pair("  What is  2+2?\n", "4 ").id
    assert a.id != pair("What is 2+2?", "4", source="other").id
    assert a.id != pair("What is 2+3?", "4").id
    assert a.prompt == "What is 2+2?" and a.response == "4"


def test_round_trip_streams_every_record(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    records = [pair(f"q{i}", f"a{i}") for i in range(5)]
    assert write_records(path, iter(records)) == 5
    assert list(read_records(path)) == records
    assert json.loads(path.read_text().splitlines()[0])["messages"][1] == {"role": "assistant", "content": "a0"}


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    good = pair("q", "a").model_dump_json()
    path.write_text(f"{good}\n\n{good}\n{{not json\n")
    reader = read_records(path)
    assert len([next(reader), next(reader)]) == 2
    with pytest.raises(RecordError, match=rf"{path}:4: not valid JSON") as info:
        next(reader)
    assert info.value.line == 4


def test_schema_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"id": "x", "source": "s", "messages": [{"role": "bot", "content": "hi"}]}) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:1: messages\.0\.role"):
        list(read_records(path))
    path.write_text(json.dumps({"id": "x", "source": "s", "messages": []}) + "\n")
    with pytest.raises(RecordError, match="messages: List should have at least 1 item"):
        list(read_records(path))


def test_interrupted_write_leaves_the_old_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_records(path, [pair("old", "old")])
    before = path.read_text()

    def broken():
        yield pair("new", "new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_records(path, broken())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]
