"""train: curate/pairs.jsonl -> train/checkpoints/, adapter/, merged/, log.jsonl, loss.png, losses.jsonl."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from pipeline.artifacts import RunDir, atomic_path
from pipeline.config import PipelineConfig
from pipeline.plots import figure
from pipeline.pairs import read_pairs
from pipeline.train.data import encode_all, split
from pipeline.train.backend import make_accelerator, plain_model
from pipeline.train.loop import example_losses, train
from pipeline.train.model import load_model, load_tokenizer


def input_path(cfg: PipelineConfig, run: RunDir) -> Path:
    return cfg.train.input or run.root / "curate" / "pairs.jsonl"


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    return [input_path(cfg, run)]


def save_folder(out: Path, write) -> None:  # noqa: ANN001 - a callable writing into a folder
    """Write a folder under a temporary name; replace `out` only when complete."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def loss_curve(log: Path, out: Path) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line]
    with figure(out, figsize=(8, 4)) as (_, ax):
        steps = [r for r in rows if "loss" in r]
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train loss")
        val = [r for r in rows if "val_loss" in r]
        if val:
            ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation loss")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    """Train in this process, or as one rank of `accelerate launch`: then every rank trains its share and
    only the main process writes losses, adapter, merged model and plot."""
    from accelerate.utils import set_seed

    t = cfg.train
    path = input_path(cfg, run_dir)
    records = list(read_pairs(path))
    if not records:
        raise ValueError(f"{path}: no records to train on")
    out = run_dir.stage_dir("train")
    accelerator = make_accelerator(t)  # first: sharded backends want the process group before the model
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    set_seed(cfg.run.seed)  # before the model: LoRA's initial A matrices are drawn here, alike on every rank
    model, source = load_model(t, dtype)
    tokenizer = load_tokenizer(source, t)
    examples, stats = encode_all(records, tokenizer, t.template, t.max_length, t.too_long)
    train_set, val_set = split(examples, t.validation_fraction, cfg.run.seed)
    model = train(accelerator, t, model, train_set, val_set, tokenizer.pad_token_id, out, cfg.run.seed)
    losses = example_losses(accelerator, model, train_set, tokenizer.pad_token_id)
    trained = plain_model(accelerator, model, lambda: load_model(t, dtype)[0])
    counts: dict[str, int | float] = {
        "records": stats.records, "examples": len(examples), "train": len(train_set), "validation": len(val_set),
        "truncated": stats.truncated, "dropped_too_long": stats.dropped_too_long,
        "dropped_no_target": stats.dropped_no_target, "processes": accelerator.num_processes,
    }
    if trained is not None:  # the main process
        save_outputs(trained, tokenizer, losses, out, t.method == "lora")
        counts.update(validation_ends(out / "log.jsonl"))
    accelerator.end_training()
    return counts


def save_outputs(model, tokenizer, losses: list[tuple[str, float, int]], out: Path, lora: bool) -> None:  # noqa: ANN001
    """losses.jsonl, the adapter (LoRA), the merged model with its tokenizer, and the loss curve."""
    with atomic_path(out / "losses.jsonl") as tmp:
        tmp.write_text("".join(json.dumps({"id": i, "loss": round(loss, 5), "tokens": n}) + "\n" for i, loss, n in losses))
    if lora:
        save_folder(out / "adapter", model.save_pretrained)
        model = model.merge_and_unload()
    if not torch.cuda.is_available():
        model = model.to(torch.float32)
    model.config.use_cache = True  # for whoever generates with the merged model

    def write_merged(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    save_folder(out / "merged", write_merged)
    loss_curve(out / "log.jsonl", out / "loss.png")


def validation_ends(log: Path) -> dict[str, float]:
    """The first and last validation loss of the run (from the log, so a resumed run has both)."""
    val = [row["val_loss"] for row in map(json.loads, log.read_text().splitlines()) if "val_loss" in row]
    return {"val_loss_first": val[0], "val_loss_last": val[-1]} if val else {}


# Parameter counts of the paper recipes' base models, for the dry-run estimate when no config.json is at hand.
KNOWN_PARAMS = {"huggyllama/llama-7b": 6.74e9, "EleutherAI/gpt-j-6b": 6.05e9, "huggyllama/llama-13b": 13.0e9,
                "bundled:SmolLM2-135M-Instruct": 1.35e8}
A100_BF16_FLOPS = 312e12  # dense bf16 peak
MFU = 0.4  # a typical share of peak reached by transformer fine-tuning


def plan(cfg: PipelineConfig) -> str:
    """GPU-hours per 100,000 training examples: ~6*P FLOPs per token (full), ~4*P with LoRA (no weight grads)."""
    t = cfg.train
    params = KNOWN_PARAMS.get(t.base_model)
    if params is None:
        config = Path(t.base_model) / "config.json"
        if not config.is_file():
            return f"train: {t.method} on {t.base_model}: size unknown here (no config.json), no GPU-hour estimate"
        c = json.loads(config.read_text())
        hidden, layers = c.get("hidden_size") or c.get("n_embd"), c.get("num_hidden_layers") or c.get("n_layer")
        params = 12 * layers * hidden**2 + 2 * c["vocab_size"] * hidden
    tokens_per_example = t.max_length / 2 * t.epochs  # examples fill about half of max_length on average
    flops_per_token = (4 if t.method == "lora" else 6) * params
    hours = 100_000 * tokens_per_example * flops_per_token / (A100_BF16_FLOPS * MFU) / 3600
    text = (f"train: {t.method} on {t.base_model} ({params / 1e9:.2f}B parameters), {t.epochs:g} epoch(s), "
            f"max_length {t.max_length}: ~{hours:,.1f} A100-hours per 100,000 examples (at {MFU:.0%} of bf16 peak)")
    imports = [src for src in cfg.collect.sources if src.type == "import"]
    if imports and len(imports) == len(cfg.collect.sources) and all(src.rows for src in imports):
        rows = sum(min(src.rows, src.limit or src.rows) for src in imports)
        train_rows = rows * (1 - t.validation_fraction)
        text += (f"\n  for the {rows:,} imported rows ({train_rows:,.0f} trained): ~{train_rows * tokens_per_example:,.0f} "
                 f"tokens, ~{hours * train_rows / 100_000:,.0f} A100-hours")
    return text
