"""MPT (mpt-7b family): ALiBi, optional clip_qkv, no biases, tied embeddings -> llama.cpp's `mpt`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register
from pipeline.quantize.convert.errors import ConversionError


@register("MptForCausalLM")
class MPT(Converter):
    arch = gguf.MODEL_ARCH.MPT
    default_pre = "mpt"

    def attn(self, key: str, default: Any = None) -> Any:
        return (self.config.get("attn_config") or {}).get(key, default)

    def check(self) -> None:
        for key, why in (("softmax_scale", "llama.cpp scales by 1/sqrt(head_dim) only"),
                         ("qk_ln", "llama.cpp's mpt graph here is tested without q/k LayerNorm"),
                         ("prefix_lm", "llama.cpp attends causally only")):
            if self.attn(key):
                raise ConversionError(f"{self.dir / 'config.json'}: attn_config.{key}={self.attn(key)!r} "
                                      f"is not supported: {why}")
        if self.attn("alibi") is False:
            raise ConversionError(f"{self.dir / 'config.json'}: attn_config.alibi=false (learned positions) "
                                  "is not supported: llama.cpp's mpt uses ALiBi")
        self.refuse_if("logit_scale", lambda v: v is not None, "llama.cpp does not scale the logits")
        self.refuse_if("no_bias", lambda v: v is False, "llama.cpp's mpt graph here is tested without biases")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        hidden = self.hparam("d_model")
        w.add_context_length(self.hparam("max_seq_len"))
        w.add_embedding_length(hidden)
        w.add_block_count(self.n_blocks)
        w.add_feed_forward_length(int(hidden * self.config.get("expansion_ratio", 4)))
        w.add_head_count(self.hparam("n_heads"))
        w.add_layer_norm_eps(self.config.get("layer_norm_epsilon", 1e-5))
        w.add_max_alibi_bias(float(self.attn("alibi_bias_max", 8)))
        if self.attn("clip_qkv") is not None:
            w.add_clamp_kqv(float(self.attn("clip_qkv")))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name == "lm_head.weight" and self.config.get("tie_word_embeddings", True):
            return  # tied: llama.cpp reuses token_embd
        yield from super().map_tensor(name, data)
