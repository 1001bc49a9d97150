"""GPT-J as llama.cpp's `phi2` graph: one LayerNorm feeding parallel attention and MLP, partial neox rotary,
biases on the MLP and the LM head. (`gptneox` also loads it but drops the LM-head bias.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register
from pipeline.quantize.convert.rope import check_rope
from pipeline.quantize.convert.errors import ConversionError


def interleaved_to_halves(weights: np.ndarray, n_head: int, rotary_dim: int) -> np.ndarray:
    """GPT-J rotates interleaved pairs (0,1), (2,3)...; llama.cpp's neox rope rotates halves. Reorder the first
    rotary_dim rows of each head as [0, 2, 4, ..., 1, 3, 5, ...]; rows past rotary_dim stay."""
    head_dim = weights.shape[0] // n_head
    order = np.concatenate([np.arange(0, rotary_dim, 2), np.arange(1, rotary_dim, 2), np.arange(rotary_dim, head_dim)])
    return weights.reshape(n_head, head_dim, -1)[:, order].reshape(weights.shape)


def block_index(name: str) -> int:
    return int(name.split(".")[2])


@register("GPTJForCausalLM")
class GPTJ(Converter):
    arch = gguf.MODEL_ARCH.PHI2
    default_pre = "gpt-2"
    WHOLE_MODEL = {"transformer.wte.weight": "token_embd.weight", "transformer.ln_f.weight": "output_norm.weight",
                   "transformer.ln_f.bias": "output_norm.bias", "lm_head.weight": "output.weight",
                   "lm_head.bias": "output.bias"}
    PER_BLOCK = {"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
                 "mlp.fc_in.weight": "ffn_up.weight", "mlp.fc_in.bias": "ffn_up.bias",
                 "mlp.fc_out.weight": "ffn_down.weight", "mlp.fc_out.bias": "ffn_down.bias",
                 "attn.out_proj.weight": "attn_output.weight"}

    def __init__(self, model_dir: Path, config: dict[str, Any], outtype: str) -> None:
        super().__init__(model_dir, config, outtype)
        self.pending: dict[int, dict[str, np.ndarray]] = {}  # q, k, v of a block until all three are read

    def check(self) -> None:
        self.refuse_if("activation_function", lambda v: v not in (None, "gelu_new"), "llama.cpp's phi2 uses tanh GELU")
        self.refuse_if("tie_word_embeddings", bool, "phi2 needs its own LM head with a bias")
        check_rope(self.config, str(self.dir / "config.json"), (), "GPTJForCausalLM")

    def rotary_dim(self) -> int:
        return self.config.get("rotary_dim") or self.hparam("n_embd") // self.hparam("n_head")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        hidden = self.hparam("n_embd")
        heads = self.hparam("n_head")
        w.add_context_length(self.hparam("n_positions"))
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(self.config.get("n_inner") or 4 * hidden)
        w.add_block_count(self.n_blocks)
        w.add_head_count(heads)
        w.add_head_count_kv(heads)
        w.add_layer_norm_eps(self.hparam("layer_norm_epsilon"))
        w.add_rope_dimension_count(self.rotary_dim())
        w.add_rope_freq_base(10000.0)  # GPT-J's fixed base
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return  # causal-mask buffers, not weights
        if name in self.WHOLE_MODEL:
            yield self.WHOLE_MODEL[name], data
            return
        bid, part = block_index(name), name.split(".", 3)[3]
        if part in self.PER_BLOCK:
            yield f"blk.{bid}.{self.PER_BLOCK[part]}", data
            if part == "attn.out_proj.weight":  # phi2 requires an output bias; GPT-J has none
                yield f"blk.{bid}.attn_output.bias", np.zeros(data.shape[0], dtype=np.float32)
        elif part in ("attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight"):
            parts = self.pending.setdefault(bid, {})
            parts[part[5]] = data
            if len(parts) == 3:  # one fused [q; k; v], with q and k rows in neox order
                heads, rot = self.hparam("n_head"), self.rotary_dim()
                q, k = (interleaved_to_halves(parts[x], heads, rot) for x in "qk")
                yield f"blk.{bid}.attn_qkv.weight", np.concatenate([q, k, parts["v"]])
                del self.pending[bid]
        else:
            raise ConversionError(f"{self.dir}: tensor {name!r} has no place in the phi2 graph")
