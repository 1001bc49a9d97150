"""`accelerate launch` with 2 processes (gloo, CPU) trains exactly what one process does, under DDP, DeepSpeed
ZeRO-2 and FSDP; survives kill -9 of the launcher (workers die with it) and interrupted checkpoint writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from pipeline.train.checkpoints import COMPLETE, latest_checkpoint
from pipeline.train.data import Batch
from pipeline.train.loop import rank_shares
from tests.train.test_train_stage import ROOT, pairs, run_train

ACCELERATE = Path(sys.executable).with_name("accelerate")
pytestmark = pytest.mark.slow


def settings(tmp_path: Path, model: Path, name: str, *extra: str) -> list[str]:
    """6 optimizer steps (the 6th in a second epoch, the 5th a short group), no dropout: exact comparisons."""
    return [f"train.input={tmp_path / 'pairs.jsonl'}", f"train.base_model={model}", f"run.runs_dir={tmp_path / 'runs'}",
            f"run.name={name}", "train.max_length=64", "train.batch_size=2", "train.learning_rate=1e-3",
            "train.warmup_steps=2", "train.lora.dropout=0", "train.max_steps=6", "train.checkpoint_every=2",
            "train.validation_fraction=0.1", *extra]


def launch(config: str, args: list[str], **popen) -> subprocess.Popen:  # noqa: ANN003
    command = [str(ACCELERATE), "launch", "--config_file", str(ROOT / "configs" / "accelerate" / f"{config}.yaml"),
               "--num_processes", "2", "--mixed_precision", "no", "-m", "pipeline", "train", *args]
    return subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), text=True, **popen)


def launch_and_wait(config: str, args: list[str]) -> str:
    proc = launch(config, args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-6000:]
    return output


def log_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train" / "log.jsonl").read_text().splitlines()]


def assert_same_training(run: Path, reference: Path, weights: str) -> None:
    """Per-step losses within 1e-4, the LR at every step equal, each step logged once, weights within 1e-4."""
    rows, ref = log_rows(run), log_rows(reference)
    assert [r["step"] for r in rows] == [r["step"] for r in ref] == list(range(7))  # the step-0 validation row
    for row, expected in zip(rows[1:], ref[1:], strict=True):
        assert row["loss"] == pytest.approx(expected["loss"], abs=1e-4)
        assert row["lr"] == expected["lr"]
        assert row["trained_tokens"] == expected["trained_tokens"]
    a, b = load_file(run / "train" / weights), load_file(reference / "train" / weights)
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    manifest = json.loads((run / "train" / "manifest.json").read_text())
    assert manifest["counts"]["processes"] == 2


@pytest.fixture(scope="module")
def reference(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One process, gradient accumulation 4: the same global batch as 2 processes x accumulation 2."""
    tmp = tmp_path_factory.mktemp("one-process")
    pairs(tmp / "pairs.jsonl", 40)
    runs = {}
    for method in ("lora", "full"):
        run, _ = run_train(*settings(tmp, tiny_llama, f"one-{method}", "train.gradient_accumulation_steps=4",
                                     f"train.method={method}"))
        runs[method] = run.root
    runs["data"] = tmp / "pairs.jsonl"
    return runs


@pytest.mark.parametrize(("config", "method"), [("ddp", "lora"), ("deepspeed-zero2", "lora"), ("fsdp", "lora"),
                                               ("fsdp", "full")])
def test_two_processes_train_what_one_does(config: str, method: str, reference: dict[str, Path], tiny_llama: Path,
                                           tmp_path: Path) -> None:
    shutil.copy(reference["data"], tmp_path / "pairs.jsonl")
    output = launch_and_wait(config, settings(tmp_path, tiny_llama, "two", "train.gradient_accumulation_steps=2",
                                              f"train.method={method}"))
    assert "2 process(es) x 2 micro-batches of 2 rows per step" in output
    run = tmp_path / "runs" / "two"
    if method == "lora":
        assert_same_training(run, reference["lora"], "adapter/adapter_model.safetensors")
    assert_same_training(run, reference[method], "merged/model.safetensors")
    merged = AutoModelForCausalLM.from_pretrained(run / "train" / "merged")
    expected = AutoModelForCausalLM.from_pretrained(reference[method] / "train" / "merged")
    ids = torch.tensor([[1, 400, 2000, 30, 7, 99]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, expected(ids).logits, atol=1e-4)
    checkpoint = latest_checkpoint(run / "train" / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "step-0000006"
    size = sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
    if method == "lora":  # the adapter and its optimizer state, not the 25 MB base model
        assert size < 1_000_000, size


def workers_of(name: str) -> list[int]:
    """Pids of live processes training run `name`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if f"run.name={name}".encode() in cmdline and "State:\tZ" not in status:
            found.append(int(proc.name))
    return found


def test_kill_9_of_the_launcher_mid_checkpoint_then_resume(reference: dict[str, Path], tiny_llama: Path,
                                                           tmp_path: Path) -> None:
    shutil.copy(reference["data"], tmp_path / "pairs.jsonl")
    args = settings(tmp_path, tiny_llama, "killed", "train.gradient_accumulation_steps=2")
    checkpoints = tmp_path / "runs" / "killed" / "train" / "checkpoints"
    proc = launch("ddp", args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # the second checkpoint's write: its temporary folder exists (or it just completed)
    while not (list(checkpoints.glob(".step-0000004.tmp")) or (checkpoints / "step-0000004").is_dir()):
        assert time.monotonic() < deadline and proc.poll() is None, "no second checkpoint"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)  # the launcher only: its workers must notice and die
    proc.wait()
    deadline = time.monotonic() + 15
    while workers_of("killed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_of("killed") == []
    assert not (tmp_path / "runs" / "killed" / "train" / "merged").exists()  # really interrupted
    # what a kill during a write can leave: a half-written temporary folder, and a step folder without the marker
    (checkpoints / ".step-0000006.tmp").mkdir()
    (checkpoints / ".step-0000006.tmp" / "model.safetensors").write_bytes(b"\0" * 10)
    shutil.copytree(checkpoints / "step-0000002", checkpoints / "step-0000005")
    (checkpoints / "step-0000005" / COMPLETE).unlink()
    resumed_from = latest_checkpoint(checkpoints)
    assert resumed_from is not None and resumed_from.name in {"step-0000002", "step-0000004"}

    output = launch_and_wait("ddp", args)
    assert f"resuming from {resumed_from.name}" in output
    assert not (checkpoints / ".step-0000006.tmp").exists()
    run = tmp_path / "runs" / "killed"
    assert_same_training(run, reference["lora"], "adapter/adapter_model.safetensors")
    assert_same_training(run, reference["lora"], "merged/model.safetensors")


def test_worker_errors_reach_the_user_verbatim_with_their_rank(tiny_llama: Path, tmp_path: Path) -> None:
    missing = tmp_path / "[/red]" / "pairs.jsonl"  # rich would read "[/red]" as markup and fail on it
    args = [a if not a.startswith("train.input=") else f"train.input={missing}"
            for a in settings(tmp_path, tiny_llama, "broken")]
    proc = launch("ddp", args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    flat = " ".join(output.split())  # the console wraps long lines
    # the launcher stops the other rank when the first one fails, so it may not get to print its own
    reporting = [rank for rank in (0, 1) if f"rank {rank}/2: train failed: input not found: {missing}" in flat]
    assert reporting, output[-3000:]
    assert "MarkupError" not in output


def test_each_rank_gets_its_share_and_a_weightless_stand_in() -> None:
    group = [Batch({}, 10 + i, 5 + i) for i in range(3)]  # a short last group: 3 batches for 2 ranks x 2
    rank0 = rank_shares(group, 0, 2, 2)
    rank1 = rank_shares(group, 1, 2, 2)
    assert [(s.batch.real_tokens, s.counts) for s in rank0] == [(10, True), (12, True)]
    assert [(s.batch.real_tokens, s.counts) for s in rank1] == [(11, True), (10, False)]
    assert [s.batch for s in rank_shares(group, 0, 1, 4)] == [*group, group[0]]
