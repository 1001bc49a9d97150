"""The training loop: accelerate for devices and distribution, checkpoints with exact resume.

One optimizer step = `gradient_accumulation_steps` micro-batches; each micro-batch's loss is weighted by
its share of the step's trained tokens, so a step's gradient is the token-level mean over the whole step
(as if it were one big batch), packed or padded alike.

Checkpoints (`train/checkpoints/step-N/`) hold model, optimizer, scheduler and RNG states (accelerate's
save_state) plus where in which epoch the step ended; batches are a deterministic function of the seed
and the epoch, so a run killed at any moment and resumed reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.config import TrainConfig
from pipeline.train.data import IGNORE, Batch, Example, epoch_batches, padded_batch

STATE_FILE = "trainer_state.json"


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # the first micro-batch of `epoch` not yet trained on


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latest_checkpoint(directory: Path) -> Path | None:
    done = [p for p in directory.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def save_checkpoint(accelerator, directory: Path, progress: Progress, keep: int) -> None:  # noqa: ANN001
    """Write under a temporary name, rename when complete, keep the newest `keep`."""
    final = directory / f"step-{progress.step:07d}"
    tmp = directory / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    accelerator.save_state(str(tmp))
    (tmp / STATE_FILE).write_text(json.dumps(progress.__dict__))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(directory.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
        shutil.rmtree(old)


@torch.no_grad()
def mean_loss(model, examples: list[Example], pad_id: int, device: torch.device, batch_size: int = 8) -> float:  # noqa: ANN001
    """Token-level mean loss over examples (padded batches)."""
    losses = per_example_losses(model, examples, pad_id, device, batch_size)
    return sum(loss * count for _, loss, count in losses) / max(sum(count for _, _, count in losses), 1)


@torch.no_grad()
def per_example_losses(model, examples: list[Example], pad_id: int, device: torch.device,  # noqa: ANN001
                       batch_size: int = 8) -> list[tuple[str, float, int]]:
    """(id, mean loss over its trained tokens, trained tokens) for each example, in input order.

    Batches are formed by length so that padding (and the vocabulary-wide logits it costs) stays small."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    results: dict[int, tuple[str, float, int]] = {}
    for start in range(0, len(order), batch_size):
        picked = order[start : start + batch_size]
        group = [examples[i] for i in picked]
        tensors = {k: v.to(device) for k, v in padded_batch(group, pad_id).items()}
        logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"], use_cache=False).logits
        labels = tensors["labels"][:, 1:]
        token_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE,
            reduction="none").view(labels.shape)
        counts = (labels != IGNORE).sum(1)
        for i, example, total, count in zip(picked, group, token_loss.sum(1).tolist(), counts.tolist(), strict=True):
            results[i] = (example.id, total / max(count, 1), count)
    model.train(was_training)
    return [results[i] for i in range(len(examples))]


def steps_of(batches: list[Batch], accumulation: int, start: int) -> list[list[Batch]]:
    return [batches[i : i + accumulation] for i in range(start, len(batches), accumulation)]


def train(cfg: TrainConfig, model, train_set: list[Example], val_set: list[Example], pad_id: int,  # noqa: ANN001, C901
          out: Path, seed: int) -> tuple[object, list[dict]]:
    """Train until max_steps / epochs; returns the (unwrapped) model and the validation history."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    cuda = torch.cuda.is_available()
    accelerator = Accelerator(cpu=not cuda, mixed_precision="bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    set_seed(seed)
    first_epoch = epoch_batches(train_set, cfg.batch_size, cfg.max_length, cfg.packing, pad_id, seed, 0)
    steps_per_epoch = math.ceil(len(first_epoch) / cfg.gradient_accumulation_steps)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    progress = Progress()
    if (resume := latest_checkpoint(checkpoints)) is not None:
        accelerator.load_state(str(resume))
        progress = Progress(**json.loads((resume / STATE_FILE).read_text()))
        accelerator.print(f"resuming from {resume.name}: step {progress.step}/{total_steps}")
    n_params = sum(p.numel() for p in trainable)
    accelerator.print(f"{n_params:,} trainable parameters; {len(train_set)} train / {len(val_set)} validation "
                      f"examples; {steps_per_epoch} steps per epoch, {total_steps} steps")
    log = (out / "log.jsonl").open("a")
    history: list[dict] = []
    if val_set and progress.step == 0:  # the starting point of the validation curve
        history.append({"step": 0, "val_loss": round(mean_loss(model, val_set, pad_id, accelerator.device), 5)})
        log.write(json.dumps(history[-1]) + "\n")
    bar = tqdm(total=total_steps, initial=progress.step, desc="train", unit="step", disable=not accelerator.is_main_process)
    model.train()
    while progress.step < total_steps:
        batches = first_epoch if progress.epoch == 0 else epoch_batches(
            train_set, cfg.batch_size, cfg.max_length, cfg.packing, pad_id, seed, progress.epoch)
        for group in steps_of(batches, cfg.gradient_accumulation_steps, progress.batch_in_epoch):
            started = time.perf_counter()
            trained = sum(b.trained_tokens for b in group)
            step_loss = 0.0
            for i, batch in enumerate(group):
                tensors = {k: v.to(accelerator.device) for k, v in batch.tensors.items()}
                sync = accelerator.no_sync(model) if i < len(group) - 1 else nullcontext()
                with sync:
                    # use_cache=False: with a cache, transformers ignores packed position ids and
                    # lets packed sequences attend to each other.
                    loss = model(**tensors, use_cache=False).loss * (batch.trained_tokens / trained)
                    accelerator.backward(loss)
                step_loss += loss.item()
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            progress.step += 1
            progress.batch_in_epoch += len(group)
            seconds = time.perf_counter() - started
            real = sum(b.real_tokens for b in group)
            entry = {"step": progress.step, "epoch": progress.epoch, "loss": round(step_loss, 5),
                     "lr": scheduler.get_last_lr()[0], "tokens": real, "trained_tokens": trained,
                     "tokens_per_s": round(real / seconds, 1), "peak_memory_mb": round(peak_memory_mb(), 1)}
            if val_set and ((cfg.eval_every and progress.step % cfg.eval_every == 0) or progress.step == total_steps):
                entry["val_loss"] = round(mean_loss(model, val_set, pad_id, accelerator.device), 5)
                history.append({"step": progress.step, "val_loss": entry["val_loss"]})
            log.write(json.dumps(entry) + "\n")
            log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}")
            if progress.step % cfg.checkpoint_every == 0 or progress.step == total_steps:
                save_checkpoint(accelerator, checkpoints, progress, cfg.keep_checkpoints)
            if progress.step >= total_steps:
                break
        else:
            progress.epoch += 1
            progress.batch_in_epoch = 0
    bar.close()
    log.close()
    return accelerator.unwrap_model(model), history
