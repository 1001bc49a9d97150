"""Load the base model and tokenizer; wrap it with a LoRA adapter (peft) or leave it for full fine-tuning."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import TrainConfig
from pipeline.hf_models import ModelSourceError, resolve_model
from pipeline.train.chat_templates import CHAT_TEMPLATES, chat_template


def load_tokenizer(source: str | Path, cfg: TrainConfig):  # noqa: ANN201 - a transformers tokenizer
    """The base model's tokenizer, with train.chat_template in place of its own when one is set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.chat_template:
        tokenizer.chat_template = chat_template(cfg.chat_template)
    elif cfg.template == "chat" and not tokenizer.chat_template:
        raise ValueError(f"train.base_model={cfg.base_model!r} has no chat template (a base model): set "
                         f"train.chat_template to one of {', '.join(CHAT_TEMPLATES)} or a Jinja template, "
                         "or use train.template=gpt4all")
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


# The attention projections LoRA adapts when train.lora.target_modules is null, per transformers model_type:
# every projection in and out of attention (the q/k/v/o of QLoRA-style recipes), fused where the model fuses them
# (Phi-3's qkv_proj, MPT's Wqkv, Falcon's query_key_value).
_QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
ATTENTION_PROJECTIONS: dict[str, list[str]] = {
    "llama": _QKVO, "mistral": _QKVO, "qwen2": _QKVO, "qwen3": _QKVO, "smollm3": _QKVO, "olmo2": _QKVO,
    "gemma2": _QKVO, "gemma3_text": _QKVO, "phi3": ["qkv_proj", "o_proj"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "mpt": ["Wqkv", "out_proj"],
    "falcon": ["query_key_value", "dense"],
}


def linear_layer_names(model) -> list[str]:  # noqa: ANN001 - a torch module
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear)})


def target_modules(model, cfg: TrainConfig) -> list[str]:  # noqa: ANN001 - a transformers model
    """cfg.lora.target_modules, or the attention projections of the model's architecture; every name must exist."""
    targets = cfg.lora.target_modules
    if targets is None:
        model_type = model.config.model_type
        if model_type not in ATTENTION_PROJECTIONS:
            raise ValueError(f"train.lora.target_modules: no default for model type {model_type!r} (known: "
                             f"{', '.join(sorted(ATTENTION_PROJECTIONS))}); set it to some of its linear layers: "
                             f"{linear_layer_names(model)}")
        targets = ATTENTION_PROJECTIONS[model_type]
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if missing := [m for m in targets if m not in present]:
        raise ValueError(f"train.lora.target_modules: {missing} not in the model; its linear layers are "
                         f"{linear_layer_names(model)}")
    return targets


def add_lora(model, cfg: TrainConfig):  # noqa: ANN001, ANN201
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                        target_modules=target_modules(model, cfg), task_type="CAUSAL_LM")
    return get_peft_model(model, config)
