"""HF folder -> GGUF (F32/F16/BF16) on the PyPI `gguf` package, one small class per architecture.

    @register("LlamaForCausalLM", "MistralForCausalLM")
    class Llama(Converter): ...   # metadata + how one tensor maps

The tokenizer (GPT-2-style byte-level BPE, or SentencePiece), its special tokens and the chat template go
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

    def __init__(self, model_dir: Path, config: dict[str, Any], outtype: str) -> None:
        self.dir, self.config, self.outtype = model_dir, config, outtype
        self.n_blocks = self.hparam("num_hidden_layers", "n_layer")
        self.names = gguf.get_tensor_name_map(self.arch, self.n_blocks)

    def hparam(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            if key in self.config:
                return self.config[key]
        if default is not None:
            return default
        raise ConversionError(f"{self.dir / 'config.json'}: missing {' / '.join(keys)}")

    # -- per architecture --------------------------------------------------------------------
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
        with atomic_path(out) as tmp:
            w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[self.arch])
            w.add_name(name)
            w.add_file_type(file_type)
            self.set_hparams(w)
            add_vocab(w, self.dir, self.hparam("vocab_size", default=0) or None)
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

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        heads = self.hparam("num_attention_heads")
        hidden = self.hparam("hidden_size")
        rope = self.config.get("rope_parameters") or {}
        w.add_context_length(self.hparam("max_position_embeddings"))
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(self.hparam("intermediate_size"))
        w.add_block_count(self.n_blocks)
        w.add_head_count(heads)
        w.add_head_count_kv(self.hparam("num_key_value_heads", default=heads))
        w.add_rope_dimension_count(self.config.get("head_dim") or hidden // heads)
        w.add_rope_freq_base(float(rope.get("rope_theta") or self.config.get("rope_theta", 10000.0)))
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


@register("GPTJForCausalLM")
class GPTJ(Converter):
    arch = gguf.MODEL_ARCH.GPTJ

    def set_hparams(self, w: gguf.GGUFWriter) -> None:
        hidden = self.hparam("n_embd")
        w.add_context_length(self.hparam("n_positions"))
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(self.config.get("n_inner") or 4 * hidden)
        w.add_block_count(self.n_blocks)
        w.add_head_count(self.hparam("n_head"))
        w.add_rope_dimension_count(self.hparam("rotary_dim"))
        w.add_layer_norm_eps(self.hparam("layer_norm_epsilon"))
        w.add_vocab_size(self.hparam("vocab_size"))

    def map_tensor(self, name: str, data: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return  # causal-mask buffers, not weights
        yield from super().map_tensor(name, data)


def pre_tokenizer(tokenizer_json: dict[str, Any]) -> str:
    """llama.cpp's pre-tokenizer name for a byte-level BPE, read off the tokenizer's own pipeline."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"  # digits split one by one, then GPT-2's regex (SmolLM, StarCoder-style)
    if kinds == ["ByteLevel"]:
        return "gpt-2"
    return "default"


def add_vocab(w: gguf.GGUFWriter, model_dir: Path, n_vocab: int | None) -> None:
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
        add_bpe_vocab(w, model_dir, n_vocab)
    else:
        raise ConversionError(f"{model_dir}: no tokenizer.json or tokenizer.model; save the tokenizer with the model")
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.add_to_gguf(w, quiet=True)


def add_bpe_vocab(w: gguf.GGUFWriter, model_dir: Path, n_vocab: int | None) -> None:
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
    w.add_tokenizer_pre(pre_tokenizer(tokenizer_json))
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
