"""The training loop: one process or many (accelerate launch), the same update either way; exact resume.

Global batches: an epoch's batches (each `batch_size` rows) are a deterministic function of the seed and
the epoch, built identically on every rank. One optimizer step takes the next `gradient_accumulation_steps
x processes` of them; rank r trains batches r, r + processes, ... of that group. Each micro-batch's loss is
weighted by its share of the whole group's trained tokens, which every rank knows without communication
(the group is the same everywhere), so the gradient of a step is the token-level mean over all of its tokens:
N processes with accumulation A compute what one process with accumulation N*A computes.

Every rank runs exactly `gradient_accumulation_steps` micro-steps per optimizer step (a rank whose share of
an epoch's last, short group runs out repeats a batch with weight 0), because DDP, FSDP and DeepSpeed need
every rank in every collective. The LR scheduler is stepped here, once per optimizer step.

Checkpoints (checkpoints.py) hold model, optimizer, scheduler and RNG states plus where in which epoch the
step ended, so a run killed at any moment and resumed reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.artifacts import atomic_path
from pipeline.config import TrainConfig
from pipeline.train.checkpoints import Checkpointer, Progress
from pipeline.train.data import IGNORE, Batch, Example, epoch_batches, padded_batch


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Share:
    """One micro-step of this rank: a batch and whether its loss counts (False: a weight-0 stand-in)."""

    batch: Batch
    counts: bool


def rank_shares(group: list[Batch], rank: int, processes: int, accumulation: int) -> list[Share]:
    """This rank's `accumulation` micro-steps of a global step's batches."""
    mine = [Share(batch, True) for batch in group[rank::processes]]
    return mine + [Share(group[0], False)] * (accumulation - len(mine))


def global_steps(batches: list[Batch], per_step: int, start: int) -> list[list[Batch]]:
    return [batches[i : i + per_step] for i in range(start, len(batches), per_step)]


@torch.no_grad()
def example_losses(accelerator, model, examples: list[Example], pad_id: int,  # noqa: ANN001
                   batch_size: int = 8) -> list[tuple[str, float, int]]:
    """(id, mean loss over its trained tokens, trained tokens) for each example, in input order.

    Batches are formed by length so that padding (and the vocabulary-wide logits it costs) stays small, and
    dealt round-robin to the ranks; a rank without a batch in the last round repeats one (sharded models
    need every rank in every forward). Every rank returns the whole list."""
    from accelerate.utils import gather_object

    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    ranks, me = accelerator.num_processes, accelerator.process_index
    found: dict[int, tuple[str, float, int]] = {}
    for turn in range(math.ceil(len(groups) / ranks)):
        index = turn * ranks + me
        picked = groups[index] if index < len(groups) else groups[0]
        group = [examples[i] for i in picked]
        tensors = {k: v.to(accelerator.device) for k, v in padded_batch(group, pad_id).items()}
        logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"], use_cache=False).logits
        labels = tensors["labels"][:, 1:]
        token_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE,
            reduction="none").view(labels.shape)
        counts = (labels != IGNORE).sum(1)
        if index < len(groups):
            for i, example, total, count in zip(picked, group, token_loss.sum(1).tolist(), counts.tolist(), strict=True):
                found[i] = (example.id, total / max(count, 1), count)
    if ranks > 1:
        for part in gather_object([found]):
            found.update(part)
    model.train(was_training)
    return [found[i] for i in range(len(examples))]


def mean_loss(accelerator, model, examples: list[Example], pad_id: int) -> float:  # noqa: ANN001
    """Token-level mean loss over examples."""
    losses = example_losses(accelerator, model, examples, pad_id)
    return sum(loss * count for _, loss, count in losses) / max(sum(count for _, _, count in losses), 1)


def check_same_data(accelerator, batches: list[Batch]) -> None:  # noqa: ANN001
    """Ranks must build identical epochs (same data, tokenizer and seed), or their shares would overlap."""
    from accelerate.utils import gather_object

    if accelerator.num_processes == 1:
        return
    mine = (len(batches), sum(b.trained_tokens for b in batches), sum(b.real_tokens for b in batches))
    seen = gather_object([mine])
    if len(set(seen)) > 1:
        raise RuntimeError(f"the ranks built different epochs (batches, trained, real tokens per rank: {seen}); "
                           "they must read the same data with the same tokenizer and seed")


def forget_steps_after(log: Path, step: int) -> None:
    """On resume, drop log rows of steps after the checkpoint: they are trained again and logged again."""
    if not log.is_file():
        return
    kept = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    with atomic_path(log) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept))


def train(accelerator, cfg: TrainConfig, model, train_set: list[Example], val_set: list[Example],  # noqa: ANN001, ANN201, C901
          pad_id: int, out: Path, seed: int):
    """Train until max_steps / epochs; returns the prepared (wrapped) model. Steps go to out/log.jsonl."""
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    processes, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    accumulation = cfg.gradient_accumulation_steps
    per_step = accumulation * processes
    first_epoch = epoch_batches(train_set, cfg.batch_size, cfg.max_length, cfg.packing, pad_id, seed, 0)
    check_same_data(accelerator, first_epoch)
    steps_per_epoch = math.ceil(len(first_epoch) / per_step)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=total_steps)
    # Not prepared: accelerate would step it once per process. Registered, so checkpoints hold it.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    checkpointer = Checkpointer(accelerator, model, out / "checkpoints", cfg.keep_checkpoints, cfg.method == "lora")
    progress = Progress(processes=processes)
    log_path = out / "log.jsonl"
    if (resumed := checkpointer.resume()) is not None:
        progress, folder = resumed
        accelerator.print(f"resuming from {folder.name}: step {progress.step}/{total_steps}")
        if main:
            forget_steps_after(log_path, progress.step)
    else:
        set_seed(seed + rank)  # each rank its own dropout stream (a resume restores every rank's RNG state)
        if main:
            log_path.unlink(missing_ok=True)
    n_params = sum(p.numel() for p in trainable)
    accelerator.print(f"{n_params:,} trainable parameters; {len(train_set)} train / {len(val_set)} validation "
                      f"examples; {processes} process(es) x {accumulation} micro-batches of {cfg.batch_size} rows "
                      f"per step; {steps_per_epoch} steps per epoch, {total_steps} steps")
    log = log_path.open("a") if main else None
    if val_set and progress.step == 0:  # the starting point of the validation curve
        start = {"step": 0, "val_loss": round(mean_loss(accelerator, model, val_set, pad_id), 5)}
        if log:
            log.write(json.dumps(start) + "\n")
    bar = tqdm(total=total_steps, initial=progress.step, desc="train", unit="step", disable=not main)
    model.train()
    while progress.step < total_steps:
        batches = first_epoch if progress.epoch == 0 else epoch_batches(
            train_set, cfg.batch_size, cfg.max_length, cfg.packing, pad_id, seed, progress.epoch)
        for group in global_steps(batches, per_step, progress.batch_in_epoch):
            started = time.perf_counter()
            trained = max(sum(b.trained_tokens for b in group), 1)
            scale = processes * accumulation / trained  # undoes the mean over ranks and micro-steps
            local_sum = torch.zeros((), device=accelerator.device)
            for share in rank_shares(group, rank, processes, accumulation):
                with accelerator.accumulate(model):
                    tensors = {k: v.to(accelerator.device) for k, v in share.batch.tensors.items()}
                    # use_cache=False: with a cache, transformers ignores packed position ids and
                    # lets packed sequences attend to each other.
                    loss_sum = model(**tensors, use_cache=False).loss * share.batch.trained_tokens
                    if not share.counts:
                        loss_sum = loss_sum * 0.0
                    accelerator.backward(loss_sum * scale)
                    local_sum += loss_sum.detach()
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
            scheduler.step()
            step_loss = accelerator.reduce(local_sum, "sum").item() / trained
            progress.step += 1
            progress.batch_in_epoch += len(group)
            seconds = time.perf_counter() - started
            real = sum(b.real_tokens for b in group)
            entry = {"step": progress.step, "epoch": progress.epoch, "loss": round(step_loss, 6),
                     "lr": scheduler.get_last_lr()[0], "tokens": real, "trained_tokens": trained,
                     "tokens_per_s": round(real / seconds, 1), "peak_memory_mb": round(peak_memory_mb(), 1)}
            if val_set and ((cfg.eval_every and progress.step % cfg.eval_every == 0) or progress.step == total_steps):
                entry["val_loss"] = round(mean_loss(accelerator, model, val_set, pad_id), 5)
            if log:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.3f}")
            if progress.step % cfg.checkpoint_every == 0 or progress.step == total_steps:
                checkpointer.save(progress)
            if progress.step >= total_steps:
                break
        else:
            progress.epoch += 1
            progress.batch_in_epoch = 0
    bar.close()
    if log:
        log.close()
    return model
