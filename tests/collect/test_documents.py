"""The documents source: a folder of real files (PDF by fpdf2, HTML, Markdown, text, and bad ones) becomes
closed-book question-answer records with their provenance, through the bundled teacher or a loopback server."""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.collect.documents import parse_questions
from pipeline.config import load_config
from pipeline.records import read_records
from runtime.documents import extract
from tests.fake_openai import FakeOpenAI
from tests.pdfs import write_pdf

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"manual.pdf", "pages/pump.html", "notes.md", "valve.txt"}
BAD = {"locked.pdf": "encrypted", "truncated.pdf": "corrupt", "photo.txt": "binary", "empty.md": "empty",
       "noise.txt": "undecodable"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_garden(tmp_path_factory.mktemp("documents"))


def write_garden(root: Path) -> Path:
    """Each supported format with invented facts (no model knows them), and each kind of bad file."""
    write_pdf(root / "manual.pdf", [
        "The Zorblax heater warms the greenhouse in winter. The Zorblax heater burns wood pellets and needs "
        "cleaning every ninety days. Its ash drawer is emptied into the compost heap behind the shed.",
        "The Ferrit gearbox turns the greenhouse windows. The Ferrit gearbox must be oiled with olive oil each "
        "spring. Its crank handle hangs on a hook beside the door of the potting room."])
    (root / "pages").mkdir()
    (root / "pages" / "pump.html").write_text(
        "<html><head><script>var tracker = 'SCRIPTLEAK';</script></head><body><nav>Home NAVLEAK</nav><main>"
        "<h1>Brindle pump</h1><p>The Brindle pump moves rainwater from the barrel to the greenhouse. The Brindle "
        "pump runs on a small solar panel.</p><script>alert('SCRIPTLEAK')</script></main></body></html>")
    (root / "notes.md").write_text("# Seed vault\n\nThe seed vault keeps tomato seeds in glass jars. The seed vault "
                                   "stays at eight degrees in the cellar.\n")
    (root / "valve.txt").write_text("The Quillon valve lets water into the pond. The Quillon valve opens when "
                                    "the pond drops below the marker stone.\n")
    write_pdf(root / "locked.pdf", ["a secret page"], password="user")
    (root / "truncated.pdf").write_bytes((root / "manual.pdf").read_bytes()[:400])
    (root / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "empty.md").write_text("")
    rng = random.Random(0)
    (root / "noise.txt").write_bytes(bytes(rng.randrange(0x80, 0x100) for _ in range(2000)))
    return root


def source(folder: Path, **options: object) -> str:
    settings = {"type": "documents", "name": "garden", "path": str(folder), "chunk_tokens": 48, "overlap_tokens": 0,
                "questions_per_chunk": 2, **options}
    return f"collect.sources=[{json.dumps(settings)}]"


def run_collect(overrides: list[str]) -> tuple[RunDir, dict[str, int | float]]:
    cfg = load_config(None, overrides)
    run = RunDir(cfg.run_dir())
    manifest, _ = execute(STAGES["collect"], cfg, run, force=True)
    return run, manifest.counts


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}


def test_questions_are_read_from_any_list_shape() -> None:
    reply = ('Here are two questions:\n1. What does the Quillon valve do?\n2) "When does it open?"\n'
             '- What does the Quillon valve do?\nQ3: Where is the pond? Which stone marks it?')
    assert parse_questions(reply, 9) == ["What does the Quillon valve do?", "When does it open?",
                                         "Where is the pond?", "Which stone marks it?"]
    assert parse_questions(reply, 2) == ["What does the Quillon valve do?", "When does it open?"]
    assert parse_questions("No questions here.", 3) == []


def test_bundled_teacher_turns_every_format_into_grounded_pairs(folder: Path, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    run, counts = run_collect([source(folder, question_max_tokens=64), f"run.runs_dir={tmp_path}", "collect.teacher.temperature=0",
                               "collect.teacher.max_tokens=48", "collect.teacher.max_concurrency=2"])
    out = run.root / "collect"
    records = list(read_records(out / "pairs.jsonl"))
    assert {r.meta["document"] for r in records} == GOOD  # every good file yields pairs
    for record in records:
        assert [m.role for m in record.messages] == ["user", "assistant"] and record.response.strip()
        meta, file = record.meta, folder / record.meta["document"]
        assert meta["teacher"] == "SmolLM2-135M-Instruct" and meta["completion_tokens"] > 0
        assert meta["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
        chunk = meta["chunk"]
        assert extract(file).text[chunk["start"]:chunk["end"]] == chunk["text"]
        assert chunk.get("page") == extract(file).page_at(chunk["start"])  # PDFs only: the page the chunk starts on
        assert chunk["text"] not in record.prompt  # closed-book: the question alone is the prompt
        assert "SCRIPTLEAK" not in json.dumps(record.model_dump()) and "NAVLEAK" not in chunk["text"]
    # The questions are about their chunk: most share a word of four letters or more with it.
    grounded = [bool(words(r.prompt) & words(r.meta["chunk"]["text"])) for r in records]
    assert sum(grounded) >= 0.8 * len(records), [r.prompt for r in records]
    assert counts["document_files"] == 4 and counts["document_chunks"] == 5  # the PDF's two pages: two chunks
    assert counts["records"] == counts["document_questions"] == len(records)
    assert counts["requests_sent"] == counts["document_chunks"] + counts["document_questions"]
    # Bad files never stop the run: each is named with its reason on the terminal, in the log and the manifest.
    bad = {row["document"]: row["reason"] for row in map(json.loads, (out / "bad_files.jsonl").read_text().splitlines())}
    assert bad == BAD
    assert counts["bad_files"] == 5 and all(counts[f"bad_files_{reason}"] == 1 for reason in BAD.values())
    err = capfd.readouterr().err
    assert all(f"skipped {name}: {reason}" in err for name, reason in BAD.items())


def test_dry_run_counts_files_chunks_requests_and_cost_offline(folder: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [source(folder), f"run.runs_dir={tmp_path}", "collect.teacher.model=gpt-3.5-turbo",
                             "collect.teacher.base_url=http://127.0.0.1:9/v1", "collect.teacher.max_tokens=100"])
    text = STAGES["collect"].plan(cfg)
    assert ("documents garden: 4 files (5 unreadable: binary 1, corrupt 1, empty 1, encrypted 1, undecodable 1), "
            "5 chunks -> 15 requests (1 + 2 questions per chunk)") in text
    assert "0 prompts (0 duplicates dropped) and 5 document chunks -> 15 requests" in text
    # At most 5 * (160 + 2 * 100) completion tokens at $0.002 / 1K, plus the prompts.
    assert "at most 1,800 completion tokens" in text and "estimated cost at most $0.01" in text
    assert not (tmp_path / "tiny").exists()


def fake_teacher(prompt: str) -> str:
    """Questions about the chunk's capitalized words; the answer is the chunk's last line."""
    if "\n\nWrite " in prompt:
        names = list(dict.fromkeys(re.findall(r"\b[A-Z]\w{3,}", prompt.rsplit("\n\nWrite ", 1)[0])))
        return "\n".join(f"{i}. What does the text say about {name}?" for i, name in enumerate(names[:3], 1))
    return prompt.rsplit("\n\nAnswer this question", 1)[0].splitlines()[-1]


def test_kill_9_then_resume_gives_the_same_pairs_and_asks_nothing_twice(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note{i:02}.md").write_text("".join(
            f"## Part {j}\n\nThe Garden{i} station {j} holds Tomato{i}x{j} and Basil{i}x{j} beds.\n\n" for j in range(2)))
    overrides = [source(docs, chunk_tokens=24, questions_per_chunk=3), "collect.teacher.max_concurrency=2",
                 "collect.teacher.timeout_s=5"]
    with FakeOpenAI(latency_s=0.05, reply=fake_teacher) as server:
        args = [*overrides, f"collect.teacher.base_url={server.url}"]
        command = [sys.executable, "-m", "pipeline", "collect", "--run-dir", str(tmp_path / "killed"), *args]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(server.answered.values()) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(tmp_path / "killed" / "collect" / "cache.sqlite") as db:
            saved = [json.loads(r[0])["messages"][-1]["content"] for r in
                     db.execute("SELECT request FROM answers WHERE status = 'ok'")]
        assert 0 < len(saved) < 24 * 4 and not (tmp_path / "killed" / "collect" / "pairs.jsonl").exists()
        before = dict(server.attempts)
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert all(server.attempts[p] == before[p] for p in saved)  # answered before the kill: never asked again
    with FakeOpenAI(reply=fake_teacher) as server:
        _, counts = run_collect([*overrides, f"collect.teacher.base_url={server.url}", f"run.runs_dir={tmp_path}"])
    resumed = list(read_records(tmp_path / "killed" / "collect" / "pairs.jsonl"))
    clean = list(read_records(tmp_path / "tiny" / "collect" / "pairs.jsonl"))
    assert counts["document_chunks"] == 24 and counts["records"] == 24 * 3
    assert [r.model_dump() for r in resumed] == [r.model_dump() for r in clean]
    manifest = json.loads((tmp_path / "killed" / "collect" / "manifest.json").read_text())["counts"]
    assert manifest["requests_cached"] >= len(saved) and manifest["requests_sent"] + manifest["requests_cached"] == 96
    assert all(r.prompt.removesuffix("?").split(" about ")[1] in r.meta["chunk"]["text"] for r in resumed)
