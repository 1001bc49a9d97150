"""The Llama graph and the families that share it: pre-norm decoder blocks with RMSNorm, grouped-query
attention with rotary positions, a SiLU-gated MLP. LLaMA 1/2, Mistral, Llama 3.x (with its rope scaling and
the tied head of the 1B/3B models) and SmolLM3 (every 4th layer without rotary positions) are here; Qwen and
OLMo 2 subclass LlamaGraph in their own modules.
"""

from __future__ import annotations

from collections.abc import Iterator

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register
from pipeline.quantize.convert.rope import add_rope, check_rope, llama3_frequency_factors, rope_kind


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores q/k rows as [all real halves, all imaginary halves] per head; llama.cpp's normal (non-neox)
    rope rotates interleaved pairs. Works for a weight matrix and for a bias vector alike."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


class LlamaGraph(Converter):
    """What the Llama-graph families share: hyperparameters, rope settings, the q/k row order, the tied head.

    A subclass sets `arch`, `neox_rope` (llama.cpp rotates halves, as HF stores them: no permutation),
    `rope_kinds` (scaling types its llama.cpp graph computes as transformers does) and `unsupported`
    (config fields that must be false or absent, with why)."""

    neox_rope = False
    partial_rotary = False  # llama.cpp's graph rotates only the first rotary_dim() of each head
    rope_kinds: tuple[str, ...] = ("linear", "yarn")
    unsupported: dict[str, str] = {}

    def head_dim(self) -> int:
        return self.config.get("head_dim") or self.hparam("hidden_size") // self.hparam("num_attention_heads")

    def rotary_dim(self) -> int:
        return self.head_dim()

    def context_length(self) -> int:
        return self.hparam("max_position_embeddings")

    def check(self) -> None:
        for key, why in self.unsupported.items():
            self.refuse_if(key, bool, why)
        self.refuse_if("hidden_act", lambda v: v != "silu", "llama.cpp's graph uses a SiLU-gated MLP")
        if not self.partial_rotary:
            self.refuse_if("partial_rotary_factor", lambda v: v != 1, "llama.cpp rotates the whole head here")
        self.refuse_if("layer_types", lambda v: any(t != "full_attention" for t in v),
                       "sliding-window layers are not computed by this llama.cpp graph")
        check_rope(self.config, str(self.dir / "config.json"), self.rope_kinds, self.config["architectures"][0],
                   self.partial_rotary)

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        self.add_shape(w, self.context_length())
        w.add_head_count_kv(self.hparam("num_key_value_heads", default=self.hparam("num_attention_heads")))
        if self.config.get("head_dim"):  # may differ from hidden / heads (Qwen3, Mistral Nemo)
            w.add_key_length(self.head_dim())
            w.add_value_length(self.head_dim())
        w.add_rope_dimension_count(self.rotary_dim())
        add_rope(w, self.config)
        w.add_layer_norm_rms_eps(self.hparam("rms_norm_eps"))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        # A tied head is stored once (lm_head absent): llama.cpp then reads token_embd as the output matrix.
        if name.endswith("rotary_emb.inv_freq"):
            return  # recomputed by llama.cpp from rope_freq_base
        if not self.neox_rope:
            heads = self.hparam("num_attention_heads")
            if name.endswith(("q_proj.weight", "q_proj.bias")):
                data = permute_rotary(data, heads)
            elif name.endswith(("k_proj.weight", "k_proj.bias")):
                data = permute_rotary(data, self.hparam("num_key_value_heads", default=heads))
        yield from super().map_tensor(name, data)


@register("LlamaForCausalLM", "MistralForCausalLM")
class Llama(LlamaGraph):
    """LLaMA 1/2, Mistral and Llama 3.x: Llama 3.1's `llama3` rope scaling becomes the rope_freqs tensor."""

    arch = gguf.MODEL_ARCH.LLAMA
    rope_kinds = ("linear", "yarn", "llama3")
    unsupported = {"attention_bias": "this converter does not write Llama's optional attention biases",
                   "mlp_bias": "this converter does not write Llama's optional MLP biases"}

    def extra_tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        if rope_kind(self.config) == "llama3":
            yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", \
                llama3_frequency_factors(self.config, self.head_dim())


@register("SmolLM3ForCausalLM")
class SmolLM3(LlamaGraph):
    """SmolLM3: the Llama graph where every 4th layer (the bundled llama.cpp's fixed step) has no rotary
    positions; `no_rope_layers` must follow that pattern."""

    arch = gguf.MODEL_ARCH.SMOLLM3
    NO_ROPE_STEP = 4
    unsupported = {"attention_bias": "llama.cpp's smollm3 graph has no attention biases",
                   "mlp_bias": "llama.cpp's smollm3 graph has no MLP biases",
                   "use_sliding_window": "llama.cpp's smollm3 graph attends to the whole context"}

    def check(self) -> None:
        super().check()
        expected = [int((i + 1) % self.NO_ROPE_STEP != 0) for i in range(self.n_blocks)]
        if self.config.get("no_rope_layers", expected) != expected:
            raise self.refuse("no_rope_layers", f"llama.cpp skips rotary positions in every {self.NO_ROPE_STEP}th "
                                                "layer exactly (layers 3, 7, 11, ... counting from 0)")
