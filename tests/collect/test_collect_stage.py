"""collect against a real fault-injecting OpenAI server on 127.0.0.1, in-process and as a killed subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.records import read_records
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-0123456789abcdefSECRET"


def write_prompts(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"instruction": p}) + "\n" for p in prompts))
    return path


def config(tmp_path: Path, url: str, prompts: Path, **teacher: object) -> list[str]:
    settings = {"base_url": url, "model": "gpt-3.5-turbo", "api_key_env": "FAKE_TEACHER_KEY", "max_retries": 3,
                "timeout_s": 1.0, "max_concurrency": 4, "requests_per_minute": 6000, **teacher}
    overrides = [f"collect.teacher.{k}={v}" for k, v in settings.items()]
    source = {"type": "jsonl", "name": "test/prompts", "path": str(prompts), "prompt_field": "instruction"}
    return [*overrides, f"collect.sources=[{json.dumps(source)}]", f"run.runs_dir={tmp_path / 'runs'}"]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAKE_TEACHER_KEY", SECRET)
    return SECRET


def run_collect(overrides: list[str]) -> tuple[RunDir, dict[str, int | float]]:
    cfg = load_config(None, overrides)
    run = RunDir(cfg.run_dir())
    manifest, _ = execute(STAGES["collect"], cfg, run, force=True)
    return run, manifest.counts


def test_every_fault_ends_answered_or_recorded_as_failed(tmp_path: Path, key: str) -> None:
    prompts = ["plain one", "rate limited [429]", "flaky [500x2]", "too slow [slow]", "hung up [drop]",
               "truncated [long]", "broken [fail]", "plain one", "  plain   one "]
    with FakeOpenAI(api_key=key) as server:
        run, counts = run_collect(config(tmp_path, server.url, write_prompts(tmp_path / "p.jsonl", prompts)))
    records = {r.prompt: r for r in read_records(run.root / "collect" / "pairs.jsonl")}
    failed = [json.loads(line) for line in (run.root / "collect" / "failed.jsonl").read_text().splitlines()]
    assert counts["prompts"] == 7 and counts["duplicate_prompts"] == 2
    assert counts["records"] == 6 and counts["failed"] == 1
    assert set(records) == {"plain one", "rate limited [429]", "flaky [500x2]", "too slow [slow]", "hung up [drop]",
                            "truncated [long]"}
    assert failed == [{"source": "test/prompts", "prompt": "broken [fail]",
                       "reason": "InternalServerError (HTTP 500) after 4 attempt(s)"}]
    assert records["truncated [long]"].meta["finish_reason"] == "length"
    assert records["plain one"].response == "Answer to: plain one"
    assert records["plain one"].meta == {"teacher": "gpt-3.5-turbo", "prompt_tokens": 2, "completion_tokens": 4,
                                         "finish_reason": "stop"}
    # Each fault cost exactly the retries it needed; 429 waited for Retry-After.
    assert server.attempts["rate limited [429]"] == 2 and server.attempts["flaky [500x2]"] == 3
    assert server.attempts["too slow [slow]"] >= 2 and server.attempts["hung up [drop]"] == 2
    assert server.attempts["broken [fail]"] == 4
    assert all(n == 1 for n in server.answered.values() if n)  # nothing answered twice
    assert counts["cost_usd"] == pytest.approx((counts["sent_prompt_tokens"] + counts["sent_completion_tokens"]) * 0.002 / 1000)


def test_rerun_sends_only_what_failed(tmp_path: Path, key: str) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", ["a", "b", "broken [fail]"])
    with FakeOpenAI(api_key=key) as server:
        run_collect(config(tmp_path, server.url, prompts, max_retries=0))
        _, counts = run_collect(config(tmp_path, server.url, prompts, max_retries=0))
    assert counts["requests_cached"] == 2 and counts["requests_sent"] == 0 and counts["failed"] == 1
    assert server.attempts == {"a": 1, "b": 1, "broken [fail]": 2}


def test_multi_turn_follow_ups(tmp_path: Path, key: str) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", ["Tell me about tides."])
    with FakeOpenAI(api_key=key) as server:
        run, counts = run_collect([*config(tmp_path, server.url, prompts), "collect.followup_turns=2"])
    (record,) = read_records(run.root / "collect" / "pairs.jsonl")
    assert [m.role for m in record.messages] == ["user", "assistant"] * 3
    assert record.messages[2].content.startswith("Answer to: USER: Tell me about tides.")  # teacher-written turn
    assert counts["requests_sent"] == 5


def test_secret_never_reaches_disk_or_output(tmp_path: Path, key: str, capfd: pytest.CaptureFixture[str]) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", ["x", "broken [fail]"])
    with FakeOpenAI(api_key=key) as server:
        run, _ = run_collect(config(tmp_path, server.url, prompts, max_retries=0))
    for path in run.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_setup_errors_come_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = write_prompts(tmp_path / "p.jsonl", ["x"])
    monkeypatch.delenv("FAKE_TEACHER_KEY", raising=False)
    with pytest.raises(RuntimeError, match="environment variable FAKE_TEACHER_KEY is not set"):
        run_collect(config(tmp_path, "http://127.0.0.1:9/v1", prompts))
    monkeypatch.setenv("FAKE_TEACHER_KEY", "k")
    with pytest.raises(RuntimeError, match=r"teacher endpoint http://127.0.0.1:9/v1/ is unreachable"):
        run_collect(config(tmp_path, "http://127.0.0.1:9/v1", prompts))
    with FakeOpenAI(api_key="other") as server, pytest.raises(RuntimeError, match="refused the API key"):
        run_collect(config(tmp_path, server.url, prompts))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "ok"}\n{broken\n')
    with pytest.raises(ValueError, match=rf"{bad}:2: not valid JSON"):
        run_collect(config(tmp_path, "http://127.0.0.1:9/v1", bad))


def test_kill_9_then_resume_gives_every_prompt_once(tmp_path: Path, key: str) -> None:
    n = 40
    prompts = write_prompts(tmp_path / "p.jsonl", [f"question {i}" for i in range(n)])
    with FakeOpenAI(latency_s=0.1, api_key=key) as server:
        overrides = config(tmp_path, server.url, prompts, max_concurrency=2)
        command = [sys.executable, "-m", "pipeline", "collect", *overrides]
        env = {**os.environ, "FAKE_TEACHER_KEY": key}
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sum(server.answered.values()) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = tmp_path / "runs" / "tiny" / "collect" / "cache.sqlite"
        with sqlite3.connect(cache) as db:
            saved = [json.loads(r[0])["messages"][-1]["content"] for r in
                     db.execute("SELECT request FROM answers WHERE status = 'ok'")]
        assert 0 < len(saved) < n
        assert not (tmp_path / "runs" / "tiny" / "collect" / "pairs.jsonl").exists()
        before = dict(server.attempts)
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    records = list(read_records(tmp_path / "runs" / "tiny" / "collect" / "pairs.jsonl"))
    assert len(records) == n and len({r.id for r in records}) == n
    assert [r.prompt for r in records] == [f"question {i}" for i in range(n)]
    assert all(server.attempts[p] == before[p] for p in saved)  # answered before the kill: never resent
    assert all(server.answered[f"question {i}"] >= 1 for i in range(n))
