"""Qwen2 / Qwen2.5 (biases on q, k and v) and Qwen3 (RMSNorm on each head's q and k; head_dim set on its
own, not hidden / heads): the Llama graph with llama.cpp's neox rope, which rotates halves as HF stores them."""

from __future__ import annotations

import gguf

from pipeline.quantize.convert.base import register
from pipeline.quantize.convert.llama import LlamaGraph

SLIDING = "llama.cpp's qwen graphs attend to the whole context (no sliding window)"


@register("Qwen2ForCausalLM")
class Qwen2(LlamaGraph):
    arch = gguf.MODEL_ARCH.QWEN2
    neox_rope = True
    unsupported = {"use_sliding_window": SLIDING}


@register("Qwen3ForCausalLM")
class Qwen3(LlamaGraph):
    arch = gguf.MODEL_ARCH.QWEN3
    neox_rope = True
    unsupported = {"use_sliding_window": SLIDING,
                   "attention_bias": "this converter does not write Qwen3's optional attention biases"}
