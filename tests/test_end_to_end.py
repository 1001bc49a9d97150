"""`python -m pipeline all` on the embedded default with small counts: every stage, for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.model import GPT4All

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SMALL = ["collect.max_prompts=8", "collect.teacher.max_tokens=64", "curate.filters.truncated.enabled=false",
         "train.max_steps=2", "train.max_length=256", "train.validation_fraction=0.25", "train.checkpoint_every=1",
         "quantize.types=[q4_0]", "quantize.quality.tokens=256", "quantize.quality.window=128",
         "eval.tasks=[piqa, arc_easy]", "eval.limit=4", "eval.self_instruct_limit=4"]


def test_all_stages_end_to_end_then_skip_on_rerun(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pipeline", "all", "--config", "configs/tiny.yaml",
               f"run.runs_dir={tmp_path / 'runs'}", f"data_dir={DATA}", *SMALL]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    for stage in ("collect", "curate", "train", "quantize", "eval"):
        assert (run / stage / "manifest.json").is_file(), stage
    assert "run finished" in done.stderr and "make chat" in done.stderr
    assert (run / "curate" / "map.html").is_file() and (run / "train" / "merged" / "model.safetensors").is_file()
    results = json.loads((run / "eval" / "results.json").read_text())
    assert set(results["models"]) == {"hf:merged", "gguf:tiny-q4_0.gguf", "base hf:SmolLM2-135M-Instruct"}
    assert {(c["model"], c["task"]) for c in results["comparisons"]} == {
        (m, t) for m in ("hf:merged", "gguf:tiny-q4_0.gguf") for t in ("piqa", "arc_easy", "average")}
    assert "| tiny / gguf:tiny-q4_0.gguf |" in (run / "eval" / "leaderboard.md").read_text()
    model = GPT4All(str(run / "quantize" / "tiny-q4_0.gguf"), n_threads=2)
    with model.chat_session():
        assert model.generate("Say hello.", max_tokens=8, temp=0).strip()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert again.stderr.count("up to date, skipped") == 5
