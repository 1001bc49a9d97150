"""HF folder -> GGUF (F32/F16/BF16) on the PyPI `gguf` package, one small class per architecture.

    @register("LlamaForCausalLM", "MistralForCausalLM")
    class Llama(Converter): ...   # refusals, metadata, how one tensor maps

GPT-J runs as llama.cpp's `phi2` graph, MPT as `mpt`, Falcon as `falcon` (layouts checked against transformers);
BERT sentence encoders (all-MiniLM-L6-v2: what gpt4all's Embed4All loads) as `bert`, with their pooling.
A configuration llama.cpp would compute differently is refused before anything is written, naming the
config field: a file that loads and answers wrong is worse than none.

The tokenizer (GPT-2-style byte-level BPE, SentencePiece, or BERT's WordPiece), its special tokens and the chat template go
into the metadata, so llama.cpp chats with the file alone. An unknown architecture lists the known ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pipeline.artifacts import atomic_path

OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, np.float32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, np.float16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, None),
}


class ConversionError(ValueError):
    """A model folder that cannot be converted; says which file or field and why."""


ARCHITECTURES: dict[str, type[Converter]] = {}


def register(*names: str) -> Callable[[type[Converter]], type[Converter]]:
    def add(cls: type[Converter]) -> type[Converter]:
        for name in names:
            ARCHITECTURES[name] = cls
        return cls

    return add


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ConversionError(f"{model_dir}: config.json not found (not a Hugging Face model folder)")
    return json.loads(path.read_text())


def safetensor_items(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of every *.safetensors file, as float32 numpy arrays (bf16 included)."""
    from safetensors import SafetensorError, safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{model_dir}: no *.safetensors weights (save the model with safe_serialization)")
    for file in files:
        try:
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    yield name, handle.get_tensor(name).float().numpy()
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConversionError(f"{file}: corrupt or unreadable safetensors file ({exc})") from None


class Converter:
    """Common path: metadata, vocabulary, tensors in the output type."""

    arch: gguf.MODEL_ARCH
    default_pre = "default"  # llama.cpp's pre-tokenizer name when the tokenizer's pipeline is not recognized

    def __init__(self, model_dir: Path, config: dict[str, Any], outtype: str) -> None:
        self.dir, self.config, self.outtype = model_dir, config, outtype
        self.n_blocks = self.hparam("num_hidden_layers", "n_layer", "n_layers")
        self.names = gguf.get_tensor_name_map(self.arch, self.n_blocks)

    def hparam(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            if key in self.config:
                return self.config[key]
        if default is not None:
            return default
        raise ConversionError(f"{self.dir / 'config.json'}: missing {' / '.join(keys)}")

    # -- per architecture --------------------------------------------------------------------
    def check(self) -> None:
        """Refuse configurations llama.cpp would compute differently (naming the field), before writing."""

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        raise NotImplementedError

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        """HF name and data -> GGUF name(s) and data; nothing for tensors llama.cpp does not use."""
        new = self.names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConversionError(f"{self.dir}: tensor {name!r} has no GGUF name for {gguf.MODEL_ARCH_NAMES[self.arch]}")
        yield new, data

    # -- shared ------------------------------------------------------------------------------
    def write(self, out: Path, name: str) -> None:
        """Write the GGUF under a temporary name, renamed only when complete."""
        file_type, _ = OUTTYPES[self.outtype]
        self.check()
        with atomic_path(out) as tmp:
            w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[self.arch])
            w.add_name(name)
            w.add_file_type(file_type)
            self.set_hparams(w)
            add_vocab(w, self.dir, self.hparam("vocab_size", default=0) or None, self.default_pre)
            for hf_name, data in safetensor_items(self.dir):
                for gguf_name, tensor in self.map_tensor(hf_name, data):
                    self.add_tensor(w, gguf_name, tensor)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()

    def add_tensor(self, w: gguf.GGUFWriter, name: str, data: np.ndarray) -> None:
        # Norms, biases and other 1-D tensors stay F32, as llama.cpp expects.
        if data.ndim < 2 or self.outtype == "f32":
            w.add_tensor(name, data.astype(np.float32))
        elif self.outtype == "f16":
            w.add_tensor(name, data.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores q/k rows as [all real halves, all imaginary halves] per head; llama.cpp interleaves them."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


@register("LlamaForCausalLM", "MistralForCausalLM")
class Llama(Converter):
    arch = gguf.MODEL_ARCH.LLAMA

    def check(self) -> None:
        refuse_rope_scaling(self)

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        heads = self.hparam("num_attention_heads")
        hidden = self.hparam("hidden_size")
        w.add_context_length(self.hparam("max_position_embeddings"))
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(self.hparam("intermediate_size"))
        w.add_block_count(self.n_blocks)
        w.add_head_count(heads)
        w.add_head_count_kv(self.hparam("num_key_value_heads", default=heads))
        w.add_rope_dimension_count(self.config.get("head_dim") or hidden // heads)
        w.add_rope_freq_base(rope_theta(self.config))
        w.add_layer_norm_rms_eps(self.hparam("rms_norm_eps"))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.endswith("rotary_emb.inv_freq"):
            return  # recomputed by llama.cpp from rope_freq_base
        heads = self.hparam("num_attention_heads")
        if name.endswith("q_proj.weight"):
            data = permute_rotary(data, heads)
        elif name.endswith("k_proj.weight"):
            data = permute_rotary(data, self.hparam("num_key_value_heads", default=heads))
        yield from super().map_tensor(name, data)


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
    """GPT-J as llama.cpp's `phi2` graph: one LayerNorm feeding parallel attention and MLP, partial neox
    rotary, biases on the MLP and the LM head. (`gptneox` also loads it but drops the LM-head bias.)"""

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
        refuse_if(self, "activation_function", lambda v: v not in (None, "gelu_new"), "llama.cpp's phi2 uses tanh GELU")
        refuse_if(self, "tie_word_embeddings", bool, "phi2 needs its own LM head with a bias")
        refuse_rope_scaling(self)

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


@register("MptForCausalLM")
class MPT(Converter):
    """MPT (mpt-7b family): ALiBi, optional clip_qkv, no biases, tied embeddings -> llama.cpp's `mpt`."""

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
        refuse_if(self, "logit_scale", lambda v: v is not None, "llama.cpp does not scale the logits")
        refuse_if(self, "no_bias", lambda v: v is False, "llama.cpp's mpt graph here is tested without biases")

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


@register("FalconForCausalLM")
class Falcon(Converter):
    """Falcon 7B (multi-query), the new decoder (40B/180B: ln_attn + ln_mlp, grouped KV) and 11B -> `falcon`."""

    arch = gguf.MODEL_ARCH.FALCON
    default_pre = "falcon"

    def check(self) -> None:
        refuse_if(self, "alibi", bool, "llama.cpp's falcon uses rotary positions")
        refuse_if(self, "parallel_attn", lambda v: v is False, "llama.cpp's falcon runs attention and MLP in parallel")
        refuse_if(self, "bias", bool, "llama.cpp's falcon has no linear biases")
        refuse_rope_scaling(self)

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


@register("BertModel")
class Bert(Converter):
    """A sentence encoder: bidirectional attention, the pooling of its sentence-transformers config."""

    arch = gguf.MODEL_ARCH.BERT
    POOLING = {"pooling_mode_mean_tokens": gguf.PoolingType.MEAN, "pooling_mode_cls_token": gguf.PoolingType.CLS}

    def pooling(self) -> gguf.PoolingType:
        path = self.dir / "1_Pooling" / "config.json"
        if not path.is_file():
            return gguf.PoolingType.MEAN
        modes = [mode for mode, on in json.loads(path.read_text()).items() if on is True]
        if len(modes) != 1 or modes[0] not in self.POOLING:
            raise ConversionError(f"{path}: pooling {modes} has no llama.cpp equivalent (mean or cls token)")
        return self.POOLING[modes[0]]

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        w.add_context_length(self.hparam("max_position_embeddings"))
        w.add_embedding_length(self.hparam("hidden_size"))
        w.add_feed_forward_length(self.hparam("intermediate_size"))
        w.add_block_count(self.n_blocks)
        w.add_head_count(self.hparam("num_attention_heads"))
        w.add_layer_norm_eps(self.hparam("layer_norm_eps", default=1e-12))
        w.add_causal_attention(False)
        w.add_pooling_type(self.pooling())
        w.add_token_type_count(self.hparam("type_vocab_size", default=2))

    def add_tensor(self, w: gguf.GGUFWriter, name: str, data: np.ndarray) -> None:
        if name.startswith("token_types"):  # llama.cpp adds a row of it to F32 states as it is: keep it F32
            w.add_tensor(name, data.astype(np.float32))
        else:
            super().add_tensor(w, name, data)

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.startswith("pooler.") or name.endswith("position_ids"):
            return  # llama.cpp pools itself; position ids are implicit
        yield from super().map_tensor(name.removeprefix("bert."), data)


def refuse_if(converter: Converter, key: str, bad: Callable[[Any], bool], why: str) -> None:
    """Refuse, before anything is written, a config value the runtime would compute differently."""
    if key in converter.config and bad(converter.config[key]):
        raise ConversionError(f"{converter.dir / 'config.json'}: {key}={converter.config[key]!r} is not supported: {why}")


def refuse_rope_scaling(converter: Converter) -> None:
    """Only plain rotary positions: llama.cpp would read a scaled model's file without its scaling."""
    for key in ("rope_parameters", "rope_scaling"):
        settings = converter.config.get(key) or {}
        kind = settings.get("rope_type") or settings.get("type")
        if kind not in (None, "default"):
            raise ConversionError(f"{converter.dir / 'config.json'}: {key}: rope scaling {kind!r} is not supported "
                                  f"for {converter.config.get('architectures', ['?'])[0]}")


def rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters") or {}
    return float(rope.get("rope_theta") or config.get("rope_theta", 10000.0))


def pre_tokenizer(tokenizer_json: dict[str, Any], family_default: str = "default") -> str:
    """llama.cpp's pre-tokenizer name for a byte-level BPE, read off the tokenizer's own pipeline; the
    architecture's usual one when the pipeline is not recognized."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"  # digits split one by one, then GPT-2's regex (SmolLM, StarCoder-style)
    if kinds[:2] == ["Punctuation", "ByteLevel"]:
        return "falcon"  # Falcon's tokenizer: punctuation runs, byte-level, digit groups of three
    if kinds == ["ByteLevel"]:
        return "mpt" if family_default == "mpt" else "gpt-2"  # the same regex; llama.cpp names MPT's apart
    return family_default


def add_vocab(w: gguf.GGUFWriter, model_dir: Path, n_vocab: int | None, family_pre: str = "default") -> None:
    """Tokens with their types, merges or scores, special token ids and the chat template."""
    if (model_dir / "tokenizer.model").is_file():
        vocab = gguf.vocab.SentencePieceVocab(model_dir)  # LLaMA-1/2 style
        tokens, scores, types = zip(*vocab.all_tokens(), strict=True)
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(list(tokens))
        w.add_token_scores(list(scores))
        w.add_token_types(list(types))
    elif (model_dir / "tokenizer.json").is_file():
        if json.loads((model_dir / "tokenizer.json").read_text()).get("model", {}).get("type") == "WordPiece":
            add_wordpiece_vocab(w, model_dir)
        else:
            add_bpe_vocab(w, model_dir, n_vocab, family_pre)
    else:
        raise ConversionError(f"{model_dir}: no tokenizer.json or tokenizer.model; save the tokenizer with the model")
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.add_to_gguf(w, quiet=True)


def add_bpe_vocab(w: gguf.GGUFWriter, model_dir: Path, n_vocab: int | None, family_pre: str) -> None:
    from transformers import AutoTokenizer

    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text())
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ConversionError(f"{model_dir / 'tokenizer.json'}: only byte-level BPE or SentencePiece tokenizers "
                              f"are supported (found {model.get('type')}, byte_fallback={model.get('byte_fallback')})")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    size = n_vocab or len(by_id)
    tokens, types = [], []
    for i in range(size):
        if i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer(tokenizer_json, family_pre))
    w.add_token_list(tokens)
    w.add_token_types(types)


def add_wordpiece_vocab(w: gguf.GGUFWriter, model_dir: Path) -> None:
    """BERT's WordPiece in llama.cpp's form: a word-initial piece gets "\u2581" in front, a "##" continuation
    loses its "##"; [bracketed] special tokens stay as they are."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_tokens)
    tokens, types = [], []
    for i in range(len(by_id)):
        token = by_id[i]
        if token in special or (token.startswith("[") and token.endswith("]")):
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in special else gguf.TokenType.UNUSED)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)


def convert(model_dir: Path, out: Path, outtype: str = "f16", name: str | None = None) -> Path:
    """Convert an HF model folder to one GGUF file; unsupported architectures list the supported ones."""
    config = read_config(model_dir)
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in ARCHITECTURES:
        raise ConversionError(f"{model_dir}: architecture {arch!r} is not supported; supported: "
                              f"{', '.join(sorted(ARCHITECTURES))}")
    if outtype not in OUTTYPES:
        raise ConversionError(f"outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    ARCHITECTURES[arch](model_dir, config, outtype).write(out, name or model_dir.name)
    return out
