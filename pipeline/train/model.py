"""Load the base model and tokenizer; wrap it with a LoRA adapter (peft) or leave it for full fine-tuning."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import TrainConfig
from pipeline.hf_models import ModelSourceError, resolve_model


def load_tokenizer(source: str | Path):  # noqa: ANN201 - a transformers tokenizer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: TrainConfig, dtype: torch.dtype):  # noqa: ANN201 - a transformers / peft model
    """The base model (fp32 on CPU, bf16 on GPU), LoRA-wrapped when cfg.method == 'lora'."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(cfg.base_model)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelSourceError(f"train.base_model={cfg.base_model!r}: cannot load ({exc})") from None
    model.config.use_cache = False  # training: and packed rows need it off (see loop.py)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if cfg.method == "lora":
        model = add_lora(model, cfg)
    return model, source


def add_lora(model, cfg: TrainConfig):  # noqa: ANN001, ANN201
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in cfg.lora.target_modules if m not in present]
    if missing:
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        raise ValueError(f"train.lora.target_modules: {missing} not in the model; its linear layers are {linear}")
    config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)
