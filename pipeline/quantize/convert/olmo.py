"""OLMo 2: the Llama graph with norms after attention and after the MLP instead of before them, and RMSNorm
on the whole q and k projections (not per head); neox rope; llama.cpp requires its own output matrix."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import gguf
import numpy as np

from pipeline.quantize.convert.base import register, weight_names
from pipeline.quantize.convert.llama import LlamaGraph


@register("Olmo2ForCausalLM")
class Olmo2(LlamaGraph):
    arch = gguf.MODEL_ARCH.OLMO2
    neox_rope = True
    unsupported = {"attention_bias": "llama.cpp's olmo2 graph has no attention biases",
                   "sliding_window": "llama.cpp runs OLMo 2 without a sliding window (that is OLMo 3)"}

    def check(self) -> None:
        super().check()
        heads, hidden = self.hparam("num_attention_heads"), self.hparam("hidden_size")
        if self.head_dim() != hidden // heads:
            raise self.refuse("head_dim", f"llama.cpp's olmo2 graph uses hidden_size / num_attention_heads "
                                          f"= {hidden // heads}")

    @cached_property
    def tied(self) -> bool:
        return "lm_head.weight" not in weight_names(self.dir)

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        yield from super().map_tensor(name, data)
        if name == "model.embed_tokens.weight" and self.tied:
            yield "output.weight", data  # olmo2 in llama.cpp has no fallback to token_embd
