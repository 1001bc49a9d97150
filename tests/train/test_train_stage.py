"""The train stage: kill -9 and resume equals an uninterrupted run, LoRA merge, a real 135M run, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.hf_models import ModelSourceError
from pipeline.records import Record, write_records
from pipeline.train.data import DataError

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ["rivers", "volcanoes", "bread", "chess", "comets", "tides", "bees", "glaciers", "violins", "deserts",
          "owls", "salt", "copper", "maple trees", "lighthouses", "tea", "wolves", "coral", "thunder", "paper"]


def pairs(path: Path, n: int = 40) -> Path:
    records = [Record.create("t", [{"role": "user", "content": f"Tell me one fact about {TOPICS[i % 20]}."},
                                   {"role": "assistant", "content": f"A fact about {TOPICS[i % 20]}: they are "
                                                                    f"remarkable, number {i}."}]) for i in range(n)]
    write_records(path, records)
    return path


def overrides(tmp_path: Path, model: Path | str, data: Path, name: str, *extra: str) -> list[str]:
    return [f"train.input={data}", f"train.base_model={model}", f"run.runs_dir={tmp_path / 'runs'}", f"run.name={name}",
            "train.max_length=64", "train.batch_size=2", "train.learning_rate=1e-3", "train.warmup_steps=2",
            "train.lora.dropout=0.1", *extra]


def run_train(*args: str) -> tuple[RunDir, dict]:
    cfg = load_config(None, list(args))
    run = RunDir(cfg.run_dir())
    manifest, _ = execute(STAGES["train"], cfg, run, force=True)
    return run, manifest.counts


def test_kill_9_and_resume_reaches_the_same_weights(tiny_llama: Path, tmp_path: Path) -> None:
    data = pairs(tmp_path / "pairs.jsonl")
    steps = ["train.max_steps=30", "train.checkpoint_every=5"]
    straight, _ = run_train(*overrides(tmp_path, tiny_llama, data, "straight", *steps))

    command = [sys.executable, "-m", "pipeline", "train", *overrides(tmp_path, tiny_llama, data, "killed", *steps)]
    proc = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "runs" / "killed" / "train" / "checkpoints" / "step-0000010"
    deadline = time.monotonic() + 240
    while not checkpoint.is_dir() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log = tmp_path / "runs" / "killed" / "train" / "log.jsonl"
    assert not (tmp_path / "runs" / "killed" / "train" / "merged").exists()  # really interrupted
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "resuming from step-" in done.stdout + done.stderr

    a = load_file(straight.root / "train" / "merged" / "model.safetensors")
    b = load_file(tmp_path / "runs" / "killed" / "train" / "merged" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    losses = {}
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if "loss" in row:
            losses[row["step"]] = row["loss"]  # a step redone after the kill overwrites its first try
    reference = {json.loads(x)["step"]: json.loads(x)["loss"]
                 for x in (straight.root / "train" / "log.jsonl").read_text().splitlines() if "loss" in json.loads(x)}
    assert losses == pytest.approx(reference, abs=1e-5)


def test_lora_merge_equals_the_adapter(tiny_llama: Path, tmp_path: Path) -> None:
    from peft import PeftModel

    run, counts = run_train(*overrides(tmp_path, tiny_llama, pairs(tmp_path / "p.jsonl", 12), "lora", "train.max_steps=4"))
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    adapted = PeftModel.from_pretrained(base, run.root / "train" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run.root / "train" / "merged").eval()
    ids = torch.tensor([AutoTokenizer.from_pretrained(run.root / "train" / "merged")("Tell me about tea.")["input_ids"]])
    original = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, merged(ids).logits, atol=1e-4)
        assert not torch.allclose(original(ids).logits, merged(ids).logits, atol=1e-4)  # training changed it
    losses = [json.loads(x) for x in (run.root / "train" / "losses.jsonl").read_text().splitlines()]
    assert len(losses) == counts["train"] and all(r["loss"] > 0 and r["tokens"] > 0 for r in losses)
    assert (run.root / "train" / "loss.png").stat().st_size > 5000
    rows = [json.loads(x) for x in (run.root / "train" / "log.jsonl").read_text().splitlines()]
    assert {"step", "loss", "lr", "tokens_per_s", "peak_memory_mb"} <= set(rows[-1])


def test_real_135m_lora_run_lowers_validation_loss_and_generates(bundled_hf: Path, tmp_path: Path) -> None:
    data = pairs(tmp_path / "pairs.jsonl", 40)
    run, counts = run_train(*overrides(tmp_path, "bundled:SmolLM2-135M-Instruct", data, "real", "train.max_steps=6",
                                       "train.learning_rate=5e-4", "train.validation_fraction=0.1", "train.lora.r=8"))
    assert counts["val_loss_last"] < counts["val_loss_first"]
    model = AutoModelForCausalLM.from_pretrained(run.root / "train" / "merged")
    tokenizer = AutoTokenizer.from_pretrained(run.root / "train" / "merged")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me one fact about owls."}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(text.split()) >= 3
    assert (run.root / "train" / "merged" / "chat_template.jinja").is_file()


def test_bad_input_gives_clear_errors(tiny_llama: Path, tmp_path: Path) -> None:
    data = pairs(tmp_path / "pairs.jsonl", 6)
    with pytest.raises(ValueError, match=r"train.lora.target_modules: \['w_qkv'\] not in the model; its linear "
                                         r"layers are \['down_proj', 'gate_proj', 'k_proj'"):
        run_train(*overrides(tmp_path, tiny_llama, data, "x", "train.lora.target_modules=[w_qkv]"))
    with pytest.raises(ModelSourceError, match="model folder not found"):
        run_train(*overrides(tmp_path, tmp_path / "nowhere", data, "x"))
    with pytest.raises(DataError, match="no trainable examples among 6 records \\(6 over max_length"):
        run_train(*overrides(tmp_path, tiny_llama, data, "x", "train.max_length=16", "train.too_long=drop"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no records to train on"):
        run_train(*overrides(tmp_path, tiny_llama, empty, "x"))


@pytest.mark.parametrize("name", ["ddp", "deepspeed-zero2", "fsdp"])
def test_accelerate_launcher_configs_validate(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
    assert config.distributed_type.value == {"ddp": "MULTI_GPU", "deepspeed-zero2": "DEEPSPEED", "fsdp": "FSDP"}[name]
    assert config.mixed_precision == "bf16"
