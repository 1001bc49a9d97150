"""The registry of converters and the shared GGUF writer: one small class per architecture overrides
`check` (refusals), `set_hparams` (metadata) and `map_tensor` (how one HF tensor becomes GGUF tensors).

    @register("LlamaForCausalLM", "MistralForCausalLM")
    class Llama(LlamaGraph): ...

A configuration llama.cpp would compute differently is refused before anything is written, naming the config
field: a file that loads and answers wrong is worse than none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from pipeline.artifacts import atomic_path
from pipeline.quantize.convert.errors import ConversionError
from pipeline.quantize.convert.vocab import add_vocab

OUTTYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
}

ARCHITECTURES: dict[str, type[Converter]] = {}


def register(*names: str) -> Callable[[type[Converter]], type[Converter]]:
    """Class decorator: the HF `architectures` names this converter takes."""
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


def weight_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConversionError(f"{model_dir}: no *.safetensors weights (save the model with safe_serialization)")
    return files


def weight_names(model_dir: Path) -> set[str]:
    """Names of every stored tensor, read from the file headers only."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in weight_files(model_dir):
        with safe_open(file, framework="pt") as handle:
            names.update(handle.keys())
    return names


def safetensor_items(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Every tensor of every *.safetensors file, as float32 numpy arrays (bf16 included)."""
    from safetensors import SafetensorError, safe_open

    for file in weight_files(model_dir):
        try:
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    yield name, handle.get_tensor(name).float().numpy()
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConversionError(f"{file}: corrupt or unreadable safetensors file ({exc})") from None


class Converter:
    """Common path: metadata, vocabulary, tensors in the output type."""

    arch: gguf.MODEL_ARCH
    # llama.cpp's pre-tokenizer name when a byte-level BPE pipeline is not recognized; None refuses instead.
    default_pre: str | None = None

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

    def refuse(self, field: str, why: str) -> ConversionError:
        """The error for a config field this converter will not write (the caller raises it)."""
        value = self.config.get(field)
        return ConversionError(f"{self.dir / 'config.json'}: {field}={value!r} is not supported: {why}")

    def refuse_if(self, key: str, bad: Callable[[Any], bool], why: str) -> None:
        """Refuse, before anything is written, a config value the runtime would compute differently."""
        if key in self.config and bad(self.config[key]):
            raise self.refuse(key, why)

    def add_shape(self, w: gguf.GGUFWriter, context_length: int) -> None:
        """The sizes every HF-style (hidden_size / intermediate_size / num_attention_heads) config gives."""
        w.add_context_length(context_length)
        w.add_embedding_length(self.hparam("hidden_size"))
        w.add_feed_forward_length(self.hparam("intermediate_size"))
        w.add_block_count(self.n_blocks)
        w.add_head_count(self.hparam("num_attention_heads"))

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

    def extra_tensors(self) -> Iterator[tuple[str, np.ndarray]]:
        """Tensors computed from the config rather than stored (e.g. Llama 3's rope frequency factors)."""
        return iter(())

    # -- shared ------------------------------------------------------------------------------
    def write(self, out: Path, name: str, progress: bool = False) -> None:
        """Write the GGUF under a temporary name, renamed only when complete (with a progress bar if asked)."""
        self.check()
        with atomic_path(out) as tmp:
            w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[self.arch])
            w.add_name(name)
            w.add_file_type(OUTTYPES[self.outtype])
            self.set_hparams(w)
            add_vocab(w, self.dir, self.hparam("vocab_size", default=0) or None, self.default_pre)
            for gguf_name, tensor in self.extra_tensors():
                self.add_tensor(w, gguf_name, tensor)
            for hf_name, data in safetensor_items(self.dir):
                for gguf_name, tensor in self.map_tensor(hf_name, data):
                    self.add_tensor(w, gguf_name, tensor)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file(progress=progress)
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


def convert(model_dir: Path, out: Path, outtype: str = "f16", name: str | None = None, progress: bool = False) -> Path:
    """Convert an HF model folder to one GGUF file; unsupported architectures list the supported ones."""
    config = read_config(model_dir)
    arch = (config.get("architectures") or ["?"])[0]
    if arch not in ARCHITECTURES:
        raise ConversionError(f"{model_dir}: architecture {arch!r} is not supported; supported: "
                              f"{', '.join(sorted(ARCHITECTURES))}")
    if outtype not in OUTTYPES:
        raise ConversionError(f"outtype {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    ARCHITECTURES[arch](model_dir, config, outtype).write(out, name or model_dir.name, progress)
    return out
