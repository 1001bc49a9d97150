"""llama.cpp's quantizer from Python: GGUF (F16/F32) -> 4/5/8-bit GGUF, atomically."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import llama_cpp
from tqdm import tqdm

from pipeline.artifacts import atomic_path

# Name -> llama.cpp file type. Q4_0 is what GPT4All first shipped; K-quants keep more quality per bit.
QUANT_TYPES = {
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}

# Perplexity increase over F16 for LLaMA-v1-7B, from the table printed by llama.cpp's `llama-quantize`
# (published reference figures, not measured here).
PUBLISHED_PPL_DELTA_7B = {"q4_0": 0.2166, "q4_1": 0.1585, "q4_k_m": 0.0535, "q5_k_m": 0.0142, "q6_k": 0.0044,
                          "q8_0": 0.0004}


class QuantizeError(RuntimeError):
    """llama.cpp refused to quantize; no output file is left behind."""


TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]")  # llama.cpp logs "[  12/ 272] name - [shape], type = ..."


@contextmanager
def llama_log(log: TextIO, bar: tqdm | None = None) -> Iterator[None]:
    """llama.cpp's log goes to `log` instead of the terminal while this is open, and its per-tensor lines move
    `bar`; llama-cpp-python's own log callback comes back afterwards."""
    from llama_cpp._logger import llama_log_callback

    @llama_cpp.llama_log_callback
    def to_file(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace")
        log.write(line)
        if bar is not None and (match := TENSOR_LINE.search(line)):
            bar.total = int(match[2])
            bar.update(int(match[1]) - bar.n)

    llama_cpp.llama_log_set(to_file, ctypes.c_void_p(0))
    try:
        yield
    finally:
        llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))
        log.flush()


def quantize(source: Path, out: Path, kind: str, threads: int = 0, log: Path | None = None) -> Path:
    """Quantize `source` to `kind` (a QUANT_TYPES name); the output appears only when complete. With `log`,
    llama.cpp's per-tensor log is appended there and a progress bar counts the tensors instead."""
    if kind not in QUANT_TYPES:
        raise QuantizeError(f"unknown quantization type {kind!r}; known: {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[kind]
    params.nthread = threads
    with atomic_path(out) as tmp:
        if log is None:
            status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        else:
            with log.open("a") as text, tqdm(desc=kind, unit="tensor") as bar, llama_log(text, bar):
                status = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0:
            where = f"; llama.cpp's log: {log}" if log else ""
            raise QuantizeError(f"llama.cpp could not quantize {source} to {kind} (status {status}); "
                                f"is the architecture one llama.cpp runs?{where}")
    return out
