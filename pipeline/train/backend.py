"""The Accelerator for this launch: one process, DDP, FSDP or DeepSpeed ZeRO, as `accelerate launch` asked.

`accelerate launch --config_file configs/accelerate/{ddp,fsdp,deepspeed-zero2}.yaml` tells the workers
what to do through the environment (ACCELERATE_USE_FSDP, ACCELERATE_USE_DEEPSPEED, FSDP_*, ...).
Two things accelerate 1.15 does not do on its own, done here:
- On a machine without GPUs it turns an FSDP launch into plain data parallel (state.py only upgrades GPU
  distributed types to FSDP), silently. torch's FSDP2 runs on CPU with gloo, so the FSDP state is set.
- DeepSpeed wants its batch geometry as numbers before `prepare` when no DataLoader is prepared (the
  config's "auto" is filled from a DataLoader); it gets the train config's values. Without GPUs it runs on
  DeepSpeed's CPU accelerator over gloo, which accelerate has to be told.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from pipeline.config import TrainConfig


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() == "true"


def make_accelerator(cfg: TrainConfig):  # noqa: ANN201 - an accelerate.Accelerator
    """The Accelerator for this process, with the train config's gradient accumulation.

    Mixed precision comes from the launch (its config's `mixed_precision`); a plain `python -m pipeline`
    uses bf16 on a GPU that has it and fp32 otherwise."""
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin, InitProcessGroupKwargs

    cuda = torch.cuda.is_available()
    launched_precision = os.environ.get("ACCELERATE_MIXED_PRECISION")
    precision = None if launched_precision else ("bf16" if cuda and torch.cuda.is_bf16_supported() else "no")
    deepspeed = _flag("ACCELERATE_USE_DEEPSPEED")
    # cpu=True is what gives several CPU workers a gloo process group. DeepSpeed (with its CPU accelerator)
    # is only enabled when cpu is False, and then needs gloo named, or accelerate counts 1 process of 1.
    handlers = [InitProcessGroupKwargs(backend="gloo")] if deepspeed and not cuda else []
    accelerator = Accelerator(cpu=not cuda and not deepspeed, mixed_precision=precision, kwargs_handlers=handlers,
                              gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    if _flag("ACCELERATE_USE_FSDP") and accelerator.distributed_type == DistributedType.MULTI_CPU:
        accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the launch's FSDP_* variables
        accelerator.state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        micro = cfg.batch_size
        accelerator.state.deepspeed_plugin.deepspeed_config.update(
            train_micro_batch_size_per_gpu=micro, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            train_batch_size=micro * cfg.gradient_accumulation_steps * accelerator.num_processes,
            gradient_clipping=cfg.max_grad_norm)
    return accelerator


def is_deepspeed(accelerator) -> bool:  # noqa: ANN001
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def is_fsdp(accelerator) -> bool:  # noqa: ANN001
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def plain_model(accelerator, model, rebuild: Callable[[], torch.nn.Module]):  # noqa: ANN001, ANN201
    """The trained model as an ordinary module on the main process (None on the others).

    DDP and ZeRO-2 keep whole parameters on every rank, so unwrapping is enough. FSDP shards them: the full
    state dict is gathered (a collective, so every rank calls this) and loaded into a fresh copy."""
    if not is_fsdp(accelerator):
        return accelerator.unwrap_model(model) if accelerator.is_main_process else None
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return None
    fresh = rebuild()
    fresh.load_state_dict(state)
    return fresh
