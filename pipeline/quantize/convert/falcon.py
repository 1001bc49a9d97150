"""Falcon 7B (multi-query), the new decoder (40B/180B: ln_attn + ln_mlp, grouped KV) and 11B -> `falcon`."""

from __future__ import annotations

from collections.abc import Iterator

import gguf
import numpy as np

from pipeline.quantize.convert.base import Converter, register
from pipeline.quantize.convert.rope import check_rope, rope_theta


@register("FalconForCausalLM")
class Falcon(Converter):
    arch = gguf.MODEL_ARCH.FALCON
    default_pre = "falcon"

    def check(self) -> None:
        self.refuse_if("alibi", bool, "llama.cpp's falcon uses rotary positions")
        self.refuse_if("parallel_attn", lambda v: v is False, "llama.cpp's falcon runs attention and MLP in parallel")
        self.refuse_if("bias", bool, "llama.cpp's falcon has no linear biases")
        check_rope(self.config, str(self.dir / "config.json"), (), "FalconForCausalLM")

    def kv_heads(self) -> int:
        # transformers' FalconConfig.num_kv_heads is not reliable for 7B-style configs: derive it.
        if self.config.get("new_decoder_architecture"):
            return self.hparam("num_kv_heads", "n_head_kv")
        if self.config.get("multi_query", True):
            return 1
        return self.hparam("num_attention_heads", "n_head")

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        hidden = self.hparam("hidden_size")
        w.add_context_length(self.config.get("max_position_embeddings", 2048))
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(self.config.get("ffn_hidden_size") or 4 * hidden)
        w.add_block_count(self.n_blocks)
        w.add_head_count(self.hparam("num_attention_heads", "n_head"))
        w.add_head_count_kv(self.kv_heads())
        w.add_layer_norm_eps(self.hparam("layer_norm_epsilon"))
        w.add_rope_freq_base(rope_theta(self.config))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name == "lm_head.weight" and self.config.get("tie_word_embeddings", True):
            return  # tied: llama.cpp reuses token_embd
        if name.endswith("query_key_value.weight"):
            # Rows are grouped per KV head: (n_kv, q heads of the group + k + v, head_dim). llama.cpp reads
            # all q, then all k, then all v. (7B multi-query: n_kv = 1; old layout: n_kv = n_head, [q, k, v] per head.)
            n_head, n_kv = self.hparam("num_attention_heads", "n_head"), self.kv_heads()
            head_dim = self.hparam("hidden_size") // n_head
            grouped = data.reshape(n_kv, n_head // n_kv + 2, head_dim, -1)
            data = np.concatenate([grouped[:, :-2].reshape(-1, data.shape[1]), grouped[:, -2].reshape(-1, data.shape[1]),
                                   grouped[:, -1].reshape(-1, data.shape[1])])
        yield from super().map_tensor(name, data)
