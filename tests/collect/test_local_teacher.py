"""The embedded default: collect starts the project's own runtime server on the bundled model."""

import subprocess
import sys
from pathlib import Path

from pipeline.records import read_records

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_teacher_answers_and_stops(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pipeline", "collect", "--config", "configs/tiny.yaml",
            "--run-dir", str(tmp_path / "run"), "collect.sources=[{type: creative, n: 3}]",
            "collect.teacher.max_tokens=24"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = list(read_records(tmp_path / "run" / "collect" / "pairs.jsonl"))
    assert len(records) == 3 and all(r.response.strip() for r in records)
    assert all(r.meta["teacher"] == "SmolLM2-135M-Instruct" and r.meta["completion_tokens"] > 0 for r in records)
    assert "serving SmolLM2-135M-Instruct" in (tmp_path / "run" / "collect" / "teacher.log").read_text()
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "up to date, skipped" in again.stderr


def test_dry_run_sends_nothing_and_prints_the_plan(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "collect", "--config", "configs/tiny.yaml",
                           "--run-dir", str(tmp_path / "run"), "--dry-run", "collect.teacher.model=gpt-3.5-turbo",
                           "collect.sources=[{type: creative, n: 10}]", "collect.followup_turns=1",
                           "collect.teacher.max_tokens=160"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "10 prompts" in done.stdout and "30 requests" in done.stdout and "estimated cost at most $0.01" in done.stdout
    assert not (tmp_path / "run").exists()
