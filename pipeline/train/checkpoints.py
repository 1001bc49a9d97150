"""Checkpoints that every rank writes its part of, marked complete only when all parts are on disk.

    train/checkpoints/.step-0000010.tmp/   being written (every rank's part: weights or shards, optimizer,
                                           RNG states; the scheduler; where in which epoch the step ended)
    train/checkpoints/step-0000010/        complete: renamed by the main process after a barrier, with
                                           `checkpoint.complete` written last inside it

Resume reads only folders holding the marker, so a run killed during a write (any rank, any moment)
resumes from the previous complete checkpoint. LoRA checkpoints hold the adapter and optimizer only (the
frozen base weights are the base model's, unchanged).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from safetensors import safe_open

from pipeline.train.backend import is_deepspeed, is_fsdp

STATE_FILE = "trainer_state.json"
COMPLETE = "checkpoint.complete"


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # the first batch of `epoch` (global index over all ranks) not yet trained on
    processes: int = 1


class CheckpointError(RuntimeError):
    """A complete checkpoint this run cannot continue from; says why and what to do."""


def step_of(folder: Path) -> int:
    return int(folder.name.split("-")[1])


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint; folders without the marker are interrupted writes and ignored."""
    done = [p for p in directory.glob("step-*") if (p / COMPLETE).is_file()]
    return max(done, key=step_of) if done else None


@contextmanager
def fsdp_adapter_only() -> Iterator[None]:
    """accelerate's save_state/load_state call save_fsdp_model/load_fsdp_model without their `adapter_only`
    flag; within this block they pass it (as transformers' Trainer does for PEFT models under FSDP)."""
    import accelerate.accelerator as owner

    save, load = owner.save_fsdp_model, owner.load_fsdp_model
    owner.save_fsdp_model, owner.load_fsdp_model = partial(save, adapter_only=True), partial(load, adapter_only=True)
    try:
        yield
    finally:
        owner.save_fsdp_model, owner.load_fsdp_model = save, load


class Checkpointer:
    """Saves and restores the accelerator's state (model, optimizer, RNG, registered objects) in `directory`.

    How a LoRA run keeps only its adapter depends on the backend: a save hook filtering the state dict
    (one process, DDP), DeepSpeed's exclude_frozen_parameters, or FSDP's adapter_only save."""

    def __init__(self, accelerator, model, directory: Path, keep: int, adapter_only: bool) -> None:  # noqa: ANN001
        self.accelerator = accelerator
        self.directory = directory
        self.keep = keep
        self.lora = "no" if not adapter_only else "deepspeed" if is_deepspeed(accelerator) else \
            "fsdp" if is_fsdp(accelerator) else "hook"
        # named as accelerate saves and loads them: the unwrapped module's names (no DDP "module." prefix)
        self.trainable = {name for name, p in accelerator.unwrap_model(model).named_parameters() if p.requires_grad}
        if self.lora == "hook":
            accelerator.register_save_state_pre_hook(self._keep_trainable)
        if accelerator.is_main_process:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(".step-*.tmp"):  # a write a kill interrupted
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()

    def _keep_trainable(self, models, weights: list[dict], output_dir: str) -> None:  # noqa: ANN001, ARG002
        for i, state in enumerate(weights):
            weights[i] = {name: tensor for name, tensor in state.items() if name in self.trainable}

    def _lora_context(self) -> AbstractContextManager:
        return fsdp_adapter_only() if self.lora == "fsdp" else nullcontext()

    def save(self, progress: Progress) -> None:
        """Every rank writes its part under a temporary name; the main process marks and renames it."""
        accelerator = self.accelerator
        final = self.directory / f"step-{progress.step:07d}"
        tmp = self.directory / f".{final.name}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        kwargs = {"exclude_frozen_parameters": True} if self.lora == "deepspeed" else {}
        with self._lora_context():
            accelerator.save_state(str(tmp), **kwargs)
        accelerator.wait_for_everyone()  # every rank's part is on disk
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(asdict(progress)))
            (tmp / COMPLETE).write_text("")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in sorted(self.directory.glob("step-*"), key=step_of)[: -self.keep]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()

    def resume(self) -> tuple[Progress, Path] | None:
        """Load the newest complete checkpoint (the main process picks it for all ranks), if there is one."""
        from accelerate.utils import broadcast_object_list

        accelerator = self.accelerator
        choice = [latest_checkpoint(self.directory) if accelerator.is_main_process else None]
        if accelerator.num_processes > 1:
            broadcast_object_list(choice)
        folder = choice[0]
        if folder is None:
            return None
        progress = Progress(**json.loads((folder / STATE_FILE).read_text()))
        if progress.processes != accelerator.num_processes:
            raise CheckpointError(
                f"{folder} was written by {progress.processes} process(es) and this run has "
                f"{accelerator.num_processes}: a step's global batch depends on it. Resume with "
                f"--num_processes {progress.processes}, or delete {self.directory} to start over.")
        if self.lora == "hook":
            self._check_adapter(folder)
        kwargs = {"hook": {"strict": False}, "deepspeed": {"load_module_strict": False}}.get(self.lora, {})
        with self._lora_context():
            accelerator.load_state(str(folder), **kwargs)
        return progress, folder

    def _check_adapter(self, folder: Path) -> None:
        """An adapter-only checkpoint loads non-strictly; make sure it holds exactly this run's trainable weights."""
        weights = folder / "model.safetensors"
        with safe_open(weights, framework="pt") as f:
            saved = set(f.keys())
        if saved != self.trainable:
            raise CheckpointError(
                f"{weights} holds {len(saved)} trainable tensors, this run trains {len(self.trainable)} "
                f"(e.g. {sorted(saved ^ self.trainable)[:3]}): was train.lora changed? "
                f"Delete {self.directory} to start over.")
