"""Phi-3 / 3.5 and Phi-4-mini: the Llama-style block with q, k and v fused in one projection and gate and up
fused in another (llama.cpp reads both as they are stored), neox rope (partial on Phi-4-mini), and LongRoPE:
per-frequency short and long factors as two tensors plus an attention factor."""

from __future__ import annotations

import math
from collections.abc import Iterator

import gguf
import numpy as np

from pipeline.quantize.convert.base import register
from pipeline.quantize.convert.errors import ConversionError
from pipeline.quantize.convert.llama import LlamaGraph
from pipeline.quantize.convert.rope import original_context, rope_field, rope_kind, rope_settings


@register("Phi3ForCausalLM")
class Phi3(LlamaGraph):
    arch = gguf.MODEL_ARCH.PHI3
    neox_rope = True
    rope_kinds = ("longrope",)
    unsupported = {"attention_bias": "llama.cpp's phi3 graph has no attention biases"}

    partial_rotary = True

    def rotary_dim(self) -> int:
        factor = rope_settings(self.config).get("partial_rotary_factor", self.config.get("partial_rotary_factor", 1.0))
        return int(self.head_dim() * factor)

    def context_length(self) -> int:
        # The bundled llama.cpp runs Phi-3 without its sliding window; within the window attention is the same,
        # so the file's context stops there (Phi-3-mini-4k: 2047 of 4096).
        window = self.config.get("sliding_window")
        return min(window or self.hparam("max_position_embeddings"), self.hparam("max_position_embeddings"))

    def check(self) -> None:
        super().check()
        if self.head_dim() != self.hparam("hidden_size") // self.hparam("num_attention_heads"):
            raise self.refuse("head_dim", "llama.cpp's phi3 graph uses hidden_size / num_attention_heads")
        if rope_kind(self.config) == "longrope":
            settings, field, half = rope_settings(self.config), rope_field(self.config), self.rotary_dim() // 2
            for key in ("short_factor", "long_factor"):
                if len(settings.get(key) or []) != half:
                    raise ConversionError(f"{self.dir / 'config.json'}: {field}.{key} needs {half} entries "
                                          f"(rotary dimensions / 2), found {len(settings.get(key) or [])}")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        super().set_hparams(w)
        if rope_kind(self.config) == "longrope":
            w.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
            w.add_rope_scaling_orig_ctx_len(original_context(self.config))
            w.add_rope_scaling_attn_factors(self.longrope_attention_factor())

    def longrope_attention_factor(self) -> float:
        """transformers' default sqrt(1 + ln(s) / ln(original)), s = max / original context, or the given one."""
        settings = rope_settings(self.config)
        if settings.get("attention_factor") is not None:
            return float(settings["attention_factor"])
        original = original_context(self.config)
        scale = settings.get("factor") or self.hparam("max_position_embeddings") / original
        return math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1 else 1.0

    def extra_tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        if rope_kind(self.config) == "longrope":
            settings = rope_settings(self.config)
            yield "rope_factors_long.weight", np.array(settings["long_factor"], dtype=np.float32)
            yield "rope_factors_short.weight", np.array(settings["short_factor"], dtype=np.float32)
