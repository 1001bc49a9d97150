"""Gemma 2 and Gemma 3 (text): RMSNorm that scales by (1 + weight), norms after attention and after the MLP
as well as before them, a GELU-gated MLP, embeddings scaled by sqrt(hidden), a tied head, sliding-window and
global attention layers. Gemma 2 soft-caps attention and final logits; Gemma 3 norms q and k per head and
gives sliding layers their own rope base. SentencePiece vocabularies (see spm.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register, weight_names
from pipeline.quantize.convert.rope import add_rope, check_rope


class GemmaGraph(Converter):
    """What Gemma 2 and 3 share. llama.cpp scales queries by 1/sqrt(head_dim), or by 1/sqrt(hidden / heads)
    for the one model size it knows as 27B (`SCALAR_BY_HIDDEN_LAYERS` blocks); HF by 1/sqrt(query_pre_attn_scalar)."""

    SCALAR_BY_HIDDEN_LAYERS: int
    rope_kinds: tuple[str, ...] = ()

    def head_dim(self) -> int:
        return self.config.get("head_dim") or self.hparam("hidden_size") // self.hparam("num_attention_heads")

    def layer_types(self) -> list[str]:
        """Per layer 'sliding_attention' or 'full_attention' (transformers 5 writes them; older configs a period)."""
        if types := self.config.get("layer_types"):
            return types
        period = self.config.get("sliding_window_pattern") or self.config.get("_sliding_window_pattern") or 2
        return ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(self.n_blocks)]

    def full_rope(self) -> dict[str, Any]:
        """The config as rope.py reads it, for the global (full-attention) layers."""
        params = self.config.get("rope_parameters") or {}
        return {**self.config, "rope_parameters": params.get("full_attention", params) or None}

    def check(self) -> None:
        self.refuse_if("hidden_activation", lambda v: v not in (None, "gelu_pytorch_tanh"),
                       "llama.cpp's Gemma graphs use tanh-approximated GELU")
        self.refuse_if("attention_bias", bool, "llama.cpp's Gemma graphs have no attention biases")
        self.refuse_if("use_bidirectional_attention", bool, "llama.cpp runs these Gemma models causally")
        heads, hidden = self.hparam("num_attention_heads"), self.hparam("hidden_size")
        scalar = hidden // heads if self.n_blocks == self.SCALAR_BY_HIDDEN_LAYERS else self.head_dim()
        self.refuse_if("query_pre_attn_scalar", lambda v: v != scalar,
                       f"llama.cpp scales queries by 1/sqrt({scalar}) for a {self.n_blocks}-layer model")
        if "lm_head.weight" in weight_names(self.dir):
            raise self.refuse("tie_word_embeddings", "llama.cpp's Gemma graphs use the embedding matrix as the head")
        check_rope(self.full_rope(), str(self.dir / "config.json"), self.rope_kinds, self.config["architectures"][0])

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        self.add_shape(w, self.hparam("max_position_embeddings"))
        w.add_head_count_kv(self.hparam("num_key_value_heads"))
        w.add_key_length(self.head_dim())
        w.add_value_length(self.head_dim())
        w.add_layer_norm_rms_eps(self.hparam("rms_norm_eps"))
        w.add_sliding_window(self.hparam("sliding_window"))
        w.add_sliding_window_pattern([kind == "sliding_attention" for kind in self.layer_types()])
        add_rope(w, self.full_rope())
        if self.config.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(float(self.config["final_logit_softcapping"]))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.endswith("norm.weight"):
            data = data + 1.0  # HF's GemmaRMSNorm computes x * (1 + weight); llama.cpp's RMSNorm x * weight
        yield from super().map_tensor(name, data)


@register("Gemma2ForCausalLM")
class Gemma2(GemmaGraph):
    """Gemma 2: attention logits soft-capped in every layer, final logits soft-capped."""

    arch = gguf.MODEL_ARCH.GEMMA2
    SCALAR_BY_HIDDEN_LAYERS = 46

    def check(self) -> None:
        super().check()
        for key in ("attn_logit_softcapping", "final_logit_softcapping"):
            if not self.config.get(key):  # llama.cpp's gemma2 caps always (50 and 30 when the file says nothing)
                raise self.refuse(key, "llama.cpp's gemma2 graph always soft-caps; a model without it is not Gemma 2")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        super().set_hparams(w)
        w.add_attn_logit_softcapping(float(self.config["attn_logit_softcapping"]))


@register("Gemma3ForCausalLM")
class Gemma3(GemmaGraph):
    """Gemma 3 text (270M, 1B; the text part of 4B-27B): q/k norms, local and global rope bases, and linear rope
    scaling on the global layers only (4B and up: factor 8)."""

    arch = gguf.MODEL_ARCH.GEMMA3
    SCALAR_BY_HIDDEN_LAYERS = 62
    rope_kinds = ("linear",)

    def local_rope(self) -> dict[str, Any]:
        params = self.config.get("rope_parameters") or {}
        if "sliding_attention" in params:
            return params["sliding_attention"]
        return {"rope_theta": self.config.get("rope_local_base_freq", 10000.0)}

    def check(self) -> None:
        super().check()
        self.refuse_if("attn_logit_softcapping", bool, "llama.cpp's gemma3 graph does not soft-cap attention")
        local = self.local_rope()
        if local.get("rope_type", "default") != "default":
            raise self.refuse("rope_parameters", "llama.cpp scales rope on Gemma 3's global layers only")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        super().set_hparams(w)
        w.add_rope_freq_base_swa(float(self.local_rope().get("rope_theta", 10000.0)))
