"""Every GPT4All model family converts, quantizes and runs: llama.cpp's logits vs transformers' on tiny
random models built from transformers' own config classes, and a refusal for each config llama.cpp would
compute differently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    FalconConfig,
    GPTJConfig,
    LlamaConfig,
    Gemma2Config,
    Gemma3TextConfig,
    MptConfig,
    Olmo2Config,
    Phi3Config,
    PreTrainedModel,
    Qwen2Config,
    Qwen3Config,
    SmolLM3Config,
)

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.quantize.convert import ConversionError, convert, pre_tokenizer
from pipeline.quantize.convert.vocab import PIPELINES, with_pre_tokenizer
from pipeline.quantize.quantizer import quantize
from runtime.model import GPT4All

VOCAB = 49152  # the bundled SmolLM2 tokenizer's
TEXT = ("The capital of France is Paris, and the capital of Germany is Berlin. One, two, three, four. "
        "Rivers run to the sea; mountains rise above the clouds, and the wind carries the rain inland. ") * 3

SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)
# Rope scaling that starts at position 32, so the 128 scored positions run well past the original context.
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)  # inside the 49,152-token vocabulary
YARN_ROPE = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32}

FAMILIES: dict[str, tuple[str, Callable[[], object]]] = {
    "llama": ("llama", lambda: LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False)),
    "gptj": ("phi2", lambda: GPTJConfig(  # rotary_dim 8 < head_dim 16: partial, interleaved rotary
        vocab_size=VOCAB, n_positions=256, n_embd=64, n_layer=2, n_head=4, rotary_dim=8)),
    "mpt": ("mpt", lambda: MptConfig(
        vocab_size=VOCAB, d_model=64, n_heads=4, n_layers=2, expansion_ratio=4, max_seq_len=256,
        attn_config={"alibi": True, "alibi_bias_max": 8, "clip_qkv": 6.0})),
    "falcon-7b": ("falcon", lambda: FalconConfig(  # multi-query: one KV head
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
        new_decoder_architecture=False, parallel_attn=True, bias=False, alibi=False, max_position_embeddings=256)),
    "falcon-40b": ("falcon", lambda: FalconConfig(  # new decoder: ln_attn + ln_mlp, 2 grouped KV heads
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
        new_decoder_architecture=True, parallel_attn=True, bias=False, alibi=False, max_position_embeddings=256)),
    "falcon-11b": ("falcon", lambda: FalconConfig(  # new decoder with one shared LayerNorm (Falcon 2 11B)
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
        new_decoder_architecture=True, num_ln_in_parallel_attn=1, parallel_attn=True, bias=False, alibi=False,
        max_position_embeddings=256)),
    # Llama 3.1 / 3.2: llama3 rope scaling (wavelengths on both sides of the smooth band) and the tied head.
    "llama3.1": ("llama", lambda: LlamaConfig(**SMALL, rope_parameters=LLAMA3_ROPE, tie_word_embeddings=True)),
    "llama-linear": ("llama", lambda: LlamaConfig(**SMALL, rope_parameters={
        "rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}, tie_word_embeddings=False)),
    "qwen2": ("qwen2", lambda: Qwen2Config(**SMALL, tie_word_embeddings=False)),  # biases on q, k and v
    "qwen2.5-yarn": ("qwen2", lambda: Qwen2Config(**SMALL, rope_parameters=YARN_ROPE, tie_word_embeddings=True)),
    # head_dim 32 with hidden 64 and 4 heads: q/k/v are wider than the hidden state
    "qwen3": ("qwen3", lambda: Qwen3Config(**{**SMALL, "num_hidden_layers": 3}, head_dim=32, tie_word_embeddings=True)),
    "qwen3-yarn": ("qwen3", lambda: Qwen3Config(**SMALL, head_dim=32, rope_parameters={
        **YARN_ROPE, "attention_factor": 1.5, "beta_fast": 32.0, "beta_slow": 1.0}, tie_word_embeddings=False)),
    # 4 layers: the 4th has no rotary positions
    "smollm3": ("smollm3", lambda: SmolLM3Config(**{**SMALL, "num_hidden_layers": 4}, pad_token_id=0, bos_token_id=1,
                                                 eos_token_id=2)),
    "olmo2": ("olmo2", lambda: Olmo2Config(**SMALL, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
                                           eos_token_id=2)),
    "olmo2-tied": ("olmo2", lambda: Olmo2Config(**SMALL, tie_word_embeddings=True, pad_token_id=0, bos_token_id=1,
                                                eos_token_id=2)),
    # Soft-capping at values the fitted logits reach; a 16-token window on alternate layers: 112 positions past it.
    "gemma2": ("gemma2", lambda: Gemma2Config(**SMALL, **IDS, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                                              attn_logit_softcapping=2.0, final_logit_softcapping=5.0)),
    # Gemma 3's pattern (here 2 sliding : 1 global), local and global rope bases, linear scaling on global layers.
    "gemma3": ("gemma3", lambda: Gemma3TextConfig(
        **{**SMALL, "num_hidden_layers": 3}, **IDS, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})),
    # (named without "phi3": llama.cpp gives tokens of a model so named Phi-3 attributes, and its vocabulary must
    # then hold "</s>", which the bundled one does not)
    "phi-mini": ("phi3", lambda: Phi3Config(**SMALL, **IDS, tie_word_embeddings=False)),
    # Phi-3.5 / Phi-4-mini: LongRoPE, 112 positions past an original context of 16; Phi-4-mini rotates 3/4 of a head.
    "phi-longrope": ("phi3", lambda: Phi3Config(**SMALL, **IDS, original_max_position_embeddings=16, rope_parameters={
        "rope_type": "longrope", "rope_theta": 1e4, "short_factor": list(np.linspace(1.0, 1.5, 8)),
        "long_factor": list(np.linspace(1.0, 6.0, 8))})),
    "phi4-mini": ("phi3", lambda: Phi3Config(**SMALL, **IDS, tie_word_embeddings=True, original_max_position_embeddings=16,
                                             rope_parameters={"rope_type": "longrope", "rope_theta": 1e4,
                                                              "partial_rotary_factor": 0.75,
                                                              "short_factor": list(np.linspace(1.0, 1.2, 6)),
                                                              "long_factor": list(np.linspace(1.0, 4.0, 6))})),
}


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory, bundled_hf: Path) -> dict[str, Path]:
    """Each family as a saved HF folder with the bundled GPT-2-style tokenizer: random weights, then 10 Adam
    steps on the test text. A purely random model's top-2 logits over 49k tokens are often within 1e-4 of
    each other, so top-1 would measure ties rather than the conversion; a few steps make choices decided."""
    tokenizer = AutoTokenizer.from_pretrained(bundled_hf)
    ids = torch.tensor([tokenizer(TEXT)["input_ids"][:128]])
    dirs = {}
    for name, (_, make_config) in FAMILIES.items():
        torch.manual_seed(0)
        config = make_config()
        config.initializer_range = 0.1
        model: PreTrainedModel = AutoModelForCausalLM.from_config(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(10):
            model(ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        out = tmp_path_factory.mktemp(name)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        dirs[name] = out
    return dirs


def tokens_of(model_dir: Path) -> list[int]:
    tokens = AutoTokenizer.from_pretrained(model_dir)(TEXT)["input_ids"]
    assert len(tokens) >= 128
    return tokens[:128]


def llama_cpp_run(path: Path, tokens: list[int], new: int = 16) -> tuple[np.ndarray, list[int]]:
    """Logits at every position, then `new` greedy tokens."""
    import llama_cpp

    llama = llama_cpp.Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2,
                            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llama.eval(tokens)
    logits = np.array(llama.scores[: len(tokens)])
    llama.reset()
    generated = []
    for token in llama.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0):
        generated.append(token)
        if len(generated) == new:
            break
    llama.close()
    return logits, generated


def hf_run(model_dir: Path, tokens: list[int], new: int = 16) -> tuple[np.ndarray, list[int]]:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([tokens])
    with torch.inference_mode():
        logits = model(ids).logits[0].numpy()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                             do_sample=False, pad_token_id=0)
    return logits, out[0, len(tokens):].tolist()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_converts_runs_like_transformers_and_quantizes(family: str, family_dirs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    model_dir = family_dirs[family]
    tokens = tokens_of(model_dir)
    out = convert(model_dir, tmp_path / f"{family}-f32.gguf", "f32")
    assert gguf.GGUFReader(out).fields["general.architecture"].contents() == FAMILIES[family][0]

    hf_logits, hf_tokens = hf_run(model_dir, tokens)
    cpp_logits, cpp_tokens = llama_cpp_run(out, tokens)
    assert np.abs(cpp_logits - hf_logits).max() < 1e-2
    assert (cpp_logits.argmax(-1) == hf_logits.argmax(-1)).mean() >= 0.99
    assert cpp_tokens == hf_tokens

    q8 = quantize(out, tmp_path / f"{family}-q8_0.gguf", "q8_0")
    q8_logits, _ = llama_cpp_run(q8, tokens, new=1)
    assert (q8_logits.argmax(-1) == hf_logits.argmax(-1)).mean() >= 0.95

    model = GPT4All(str(q8), n_threads=2, n_ctx=256)  # the runtime's own class runs it
    assert isinstance(model.generate("The capital of France is", max_tokens=4, temp=0), str)


@pytest.mark.parametrize("family", ["gptj", "mpt", "falcon-40b", "llama3.1", "qwen3"])
def test_quantize_stage_takes_any_family_folder_with_its_quality_report(family: str, family_dirs: dict[str, Path],
                                                                         tmp_path: Path, isolated_state: Path) -> None:
    text = tmp_path / "held_out.jsonl"
    text.write_text("".join(json.dumps({"output": f"Sentence {i} is about rivers, hills and the sea."}) + "\n"
                            for i in range(100)))
    runs = isolated_state / "runs"  # the runtime registry's runs folder in this test
    cfg = load_config(None, [f"quantize.source={family_dirs[family]}", "run.name=fam", f"run.runs_dir={runs}",
                             "quantize.outtype=f32", "quantize.types=[q8_0]", f"quantize.quality.text_file={text}",
                             "quantize.quality.tokens=256", "quantize.quality.window=128"])
    manifest, _ = execute(STAGES["quantize"], cfg, RunDir(cfg.run_dir()))
    report = json.loads((runs / "fam" / "quantize" / "report.json").read_text())
    assert [r["type"] for r in report["rows"]] == ["hf (fp32)", "f32", "q8_0"]
    assert report["rows"][1]["top1_agreement"] >= 0.99 and report["rows"][2]["top1_agreement"] >= 0.9
    assert manifest.counts["files"] == 2
    # The registry finds the run's file by name and the runtime CLI answers with it.
    done = subprocess.run([sys.executable, "-m", "runtime", "generate", "fam-q8_0", "The sea", "--raw",
                           "--max-tokens", "4", "--temp", "0", "--n-ctx", "256", "--threads", "2"],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]


REFUSALS = [
    ("falcon-7b", {"alibi": True}, "alibi=True is not supported"),
    ("falcon-7b", {"parallel_attn": False}, "parallel_attn=False is not supported"),
    ("falcon-40b", {"bias": True}, "bias=True is not supported"),
    ("falcon-40b", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "rope scaling 'linear'"),
    ("mpt", {"attn_config": {"alibi": True, "softmax_scale": 0.5}}, "attn_config.softmax_scale=0.5"),
    ("mpt", {"attn_config": {"alibi": False}}, "attn_config.alibi=false"),
    ("mpt", {"logit_scale": 0.5}, "logit_scale=0.5 is not supported"),
    ("gptj", {"tie_word_embeddings": True}, "tie_word_embeddings=True is not supported"),
    ("gptj", {"activation_function": "relu"}, "activation_function='relu' is not supported"),
    ("gptj", {"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling: rope scaling 'linear'"),
    ("llama", {"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope scaling 'dynamic'"),
    ("llama", {"attention_bias": True}, "attention_bias=True is not supported"),
    ("llama", {"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
    ("llama3.1", {"rope_parameters": {**LLAMA3_ROPE, "partial_rotary_factor": 0.5}}, "partial_rotary_factor=0.5"),
    ("llama3.1", {"rope_parameters": {**LLAMA3_ROPE, "rope_type": "longrope"}}, "rope scaling 'longrope'"),
    ("qwen2", {"use_sliding_window": True}, "use_sliding_window=True is not supported"),
    ("qwen2", {"layer_types": ["sliding_attention", "full_attention"]}, "layer_types=.* is not supported"),
    ("qwen2", {"rope_parameters": {**LLAMA3_ROPE}}, "rope scaling 'llama3' is not supported for Qwen2ForCausalLM"),
    ("qwen2.5-yarn", {"rope_parameters": {**YARN_ROPE, "truncate": False}}, "truncate=False is not supported"),
    ("qwen2.5-yarn", {"rope_parameters": {**YARN_ROPE, "mscale": 0.7}}, "rope_parameters.mscale=0.7"),
    ("qwen3-yarn", {"rope_parameters": {**YARN_ROPE, "beta_fast": 16.0}}, "beta_fast=16.0 is not supported"),
    ("qwen3", {"attention_bias": True}, "attention_bias=True is not supported"),
    ("smollm3", {"no_rope_layers": [1, 0, 1, 1]}, r"no_rope_layers=\[1, 0, 1, 1\] is not supported"),
    ("smollm3", {"use_sliding_window": True}, "use_sliding_window=True is not supported"),
    ("olmo2", {"head_dim": 32}, "head_dim=32 is not supported"),
    ("gemma2", {"final_logit_softcapping": None}, "final_logit_softcapping=None is not supported"),
    ("gemma2", {"query_pre_attn_scalar": 64}, r"query_pre_attn_scalar=64 is not supported: llama.cpp scales .*sqrt\(16\)"),
    ("gemma2", {"hidden_activation": "gelu"}, "hidden_activation='gelu' is not supported"),
    ("gemma2", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "rope scaling 'linear'"),
    ("gemma3", {"attn_logit_softcapping": 50.0}, "attn_logit_softcapping=50.0 is not supported"),
    ("gemma3", {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6}, "sliding_attention": {
        "rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}}, "rope_parameters=.* scales rope on Gemma 3's global"),
    ("gemma3", {"rope_parameters": {"full_attention": {**YARN_ROPE}, "sliding_attention": {"rope_theta": 1e4}}},
     "rope scaling 'yarn' is not supported for Gemma3ForCausalLM"),
    ("phi-longrope", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0] * 7,
                                          "long_factor": [1.0] * 8}}, "short_factor needs 8 entries"),
    ("phi-mini", {"rope_parameters": {**YARN_ROPE}}, "rope scaling 'yarn' is not supported for Phi3ForCausalLM"),
]


@pytest.mark.parametrize(("family", "change", "message"), REFUSALS)
def test_configs_llama_cpp_would_compute_differently_are_refused_naming_the_field(
        family: str, change: dict, message: str, family_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / family
    shutil.copytree(family_dirs[family], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ConversionError, match=message):
        convert(folder, tmp_path / "out.gguf", "f32")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*tmp*"))


def test_an_untied_gemma_head_is_refused(family_dirs: dict[str, Path], tmp_path: Path) -> None:
    """llama.cpp's Gemma graphs read the embedding matrix as the head: a separate lm_head would be dropped."""
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "gemma2"
    shutil.copytree(family_dirs["gemma2"], folder)
    weights = load_file(folder / "model.safetensors")
    save_file({**weights, "lm_head.weight": weights["model.embed_tokens.weight"] * 2}, folder / "model.safetensors")
    with pytest.raises(ConversionError, match="tie_word_embeddings=.* is not supported: llama.cpp's Gemma graphs use"):
        convert(folder, tmp_path / "out.gguf", "f32")


def test_phi3_context_stops_at_the_sliding_window_llama_cpp_does_not_apply(family_dirs: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    folder = tmp_path / "phi-window"
    shutil.copytree(family_dirs["phi-mini"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "sliding_window": 64}))
    out = convert(folder, tmp_path / "out.gguf", "f32")
    assert gguf.GGUFReader(out).fields["phi3.context_length"].contents() == 64


def test_pre_tokenizer_names_follow_llama_cpp() -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False}
    falcon = {"type": "Sequence", "pretokenizers": [{"type": "Punctuation", "behavior": "Contiguous"}, byte_level,
                                                     {"type": "Digits", "individual_digits": False}]}
    assert pre_tokenizer({"pre_tokenizer": byte_level}) == "gpt-2"  # GPT-J uses GPT-2's tokenizer
    assert pre_tokenizer({"pre_tokenizer": byte_level}, "mpt") == "mpt"
    assert pre_tokenizer({"pre_tokenizer": falcon}, "falcon") == pre_tokenizer({"pre_tokenizer": falcon}) == "falcon"
    assert pre_tokenizer({"pre_tokenizer": {"type": "Metaspace"}}, "falcon") == "falcon"
    with pytest.raises(ConversionError, match="pre_tokenizer .* is not one llama.cpp"):
        pre_tokenizer({"pre_tokenizer": {"type": "Metaspace"}}, None)  # Llama-graph families: no guessing


@pytest.mark.parametrize("name", list(PIPELINES))
def test_a_gguf_pre_tokenizer_is_restored_in_the_rebuilt_tokenizer_json(name: str) -> None:
    """transformers' GGUF loader writes GPT-2's plain ByteLevel for every byte-level BPE; the pipeline the GGUF
    names is put back, and the converter recognises it as that name again."""
    rebuilt = {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
               "model": {"type": "BPE", "ignore_merges": False}}
    restored = with_pre_tokenizer(rebuilt, name)
    assert pre_tokenizer(restored, None) == name
    assert with_pre_tokenizer(restored, name) is restored


def test_bert_sentence_encoder_converts_and_embeds_like_embed4all(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2 (what gpt4all's Embed4All loads as a GGUF): llama.cpp's mean-pooled vectors of the
    converted file match our transformers pipeline, WordPiece tokens included."""
    import llama_cpp

    from runtime.embed import Embed4All, bundled_embedding_model

    out = convert(bundled_embedding_model(), tmp_path / "all-MiniLM-L6-v2.f16.gguf", "f16")
    reader = gguf.GGUFReader(out)
    assert reader.fields["bert.pooling_type"].parts[-1][0] == gguf.PoolingType.MEAN
    encoder = llama_cpp.Llama(str(out), embedding=True, n_threads=2, verbose=False)
    texts = ["The cat sat on the mat.", "Unbelievably, tokenization splits words into pieces."]
    ours = np.array(Embed4All().embed(texts))
    theirs = np.array([encoder.embed(t) for t in texts])
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert (ours * theirs).sum(axis=1).min() > 0.999


@pytest.mark.parametrize("family", ["llama3.1", "qwen2", "qwen3", "smollm3", "olmo2", "gemma2", "gemma3", "phi-mini",
                                    "gptj", "mpt", "falcon-40b"])
def test_lora_by_default_then_merge_then_convert(family: str, family_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The train stage adapts the architecture's own attention projections with no target_modules set, merges,
    and the merged model converts and runs in llama.cpp as it does in transformers."""
    from pipeline.records import Record, write_records

    pairs = tmp_path / "pairs.jsonl"
    write_records(pairs, [Record.create("t", [{"role": "user", "content": f"Say a fact about river {i}."},
                                              {"role": "assistant", "content": f"River {i} runs to the sea."}])
                          for i in range(8)])
    cfg = load_config(None, [f"train.input={pairs}", f"train.base_model={family_dirs[family]}", "train.method=lora",
                             f"run.runs_dir={tmp_path / 'runs'}", "run.name=lora", "train.max_steps=2",
                             "train.batch_size=4", "train.max_length=48", "train.learning_rate=1e-2"])
    manifest, _ = execute(STAGES["train"], cfg, RunDir(cfg.run_dir()))
    assert manifest.counts["train"] > 0
    adapter = json.loads((tmp_path / "runs" / "lora" / "train" / "adapter" / "adapter_config.json").read_text())
    from pipeline.train.model import ATTENTION_PROJECTIONS

    model_type = json.loads((family_dirs[family] / "config.json").read_text())["model_type"]
    assert sorted(adapter["target_modules"]) == sorted(ATTENTION_PROJECTIONS[model_type])

    merged = tmp_path / "runs" / "lora" / "train" / "merged"
    tokens = tokens_of(merged)[:64]
    out = convert(merged, tmp_path / "merged-f32.gguf", "f32")
    hf_logits, _ = hf_run(merged, tokens, new=1)
    cpp_logits, _ = llama_cpp_run(out, tokens, new=1)
    assert np.abs(cpp_logits - hf_logits).max() < 1e-2
    base_logits, _ = hf_run(family_dirs[family], tokens, new=1)
    assert np.abs(base_logits - hf_logits).max() > 1e-3  # the adapter changed the model before it was merged
