"""HF -> GGUF -> llama.cpp round trips, quantization, bad input, and the stage's outputs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTJConfig, GPTJForCausalLM

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.quantize.convert import ConversionError, convert
from pipeline.quantize.quantizer import QuantizeError, quantize
from runtime.model import GPT4All
from runtime.registry import Registry

ROOT = Path(__file__).resolve().parents[2]

TEXT = "The capital of France is Paris, and the capital of Germany is Berlin. One, two, three."


def llama_cpp_logits(path: Path, tokens: list[int]) -> np.ndarray:
    import llama_cpp

    llama = llama_cpp.Llama(str(path), n_ctx=128, logits_all=True, verbose=False)
    llama.eval(tokens)
    logits = np.array(llama.scores[: len(tokens)])
    llama.close()
    return logits


def hf_logits(model_dir: Path, tokens: list[int]) -> np.ndarray:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        return model(torch.tensor([tokens])).logits[0].numpy()


@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_tiny_llama_round_trip_matches_transformers(tiny_llama: Path, tmp_path: Path, outtype: str) -> None:
    tokens = AutoTokenizer.from_pretrained(tiny_llama)(TEXT)["input_ids"]
    out = convert(tiny_llama, tmp_path / f"tiny-{outtype}.gguf", outtype)
    diff = np.abs(llama_cpp_logits(out, tokens) - hf_logits(tiny_llama, tokens)).max()
    assert diff < 1e-2


def test_tiny_gptj_becomes_phi2_tensors_and_llama_cpp_runs_it(bundled_hf: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GPTJForCausalLM(GPTJConfig(vocab_size=49152, n_positions=256, n_embd=64, n_layer=2, n_head=4, rotary_dim=8))
    model.save_pretrained(tmp_path / "gptj")
    AutoTokenizer.from_pretrained(bundled_hf).save_pretrained(tmp_path / "gptj")
    out = convert(tmp_path / "gptj", tmp_path / "gptj.gguf", "f32")
    reader = gguf.GGUFReader(out)
    assert reader.fields["general.architecture"].contents() == "phi2"
    assert reader.fields["phi2.rope.dimension_count"].contents() == 8
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    # Within each 16-row head, the 8 rotary rows go from interleaved pairs to halves; the rest stay.
    order = [0, 2, 4, 6, 1, 3, 5, 7, *range(8, 16)]
    q = state["transformer.h.1.attn.q_proj.weight"].reshape(4, 16, 64)[:, order].reshape(64, 64)
    k = state["transformer.h.1.attn.k_proj.weight"].reshape(4, 16, 64)[:, order].reshape(64, 64)
    fused = np.concatenate([q, k, state["transformer.h.1.attn.v_proj.weight"]])
    assert np.array_equal(tensors["blk.1.attn_qkv.weight"], fused)
    assert np.array_equal(tensors["output.bias"], state["lm_head.bias"])
    assert not tensors["blk.0.attn_output.bias"].any()  # phi2 needs it; GPT-J has none
    assert len(tensors) == 5 + 2 * 9  # embeddings, final norm (w, b), output (w, b); 9 per block
    q4 = quantize(out, tmp_path / "gptj-q4_0.gguf", "q4_0")
    assert isinstance(GPT4All(str(q4), n_threads=2, n_ctx=256).generate("Hello", max_tokens=4, temp=0), str)


def test_real_135m_converts_and_chats_with_its_template(bundled_hf: Path, tmp_path: Path) -> None:
    out = convert(bundled_hf, tmp_path / "smol-f16.gguf", "f16", "smol")
    reader = gguf.GGUFReader(out)
    template = reader.fields["tokenizer.chat_template"].contents()
    assert template == (bundled_hf / "chat_template.jinja").read_text()
    tokens = AutoTokenizer.from_pretrained(bundled_hf)(TEXT)["input_ids"]
    agreement = (llama_cpp_logits(out, tokens).argmax(-1) == hf_logits(bundled_hf, tokens).argmax(-1)).mean()
    assert agreement >= 0.95
    model = GPT4All(str(out), n_threads=2)
    assert model.chat_template == template
    with model.chat_session():
        reply = model.generate("What is the capital of France?", max_tokens=16, temp=0)
        first_turn = model.render(model.current_chat_session[1:2])  # the user's turn (the system prompt is empty)
    assert "Paris" in reply or "France" in reply
    assert first_turn.startswith("<|im_start|>system\n") and first_turn.endswith("<|im_start|>assistant\n")
    assert model.stats.prompt_tokens == model.count_tokens(first_turn)


def test_bad_inputs_are_clear_and_leave_no_output(tiny_llama: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "architectures": ["BloomForCausalLM"]}))
    with pytest.raises(ConversionError, match="'BloomForCausalLM' is not supported; supported: BertModel, FalconForCausalLM, "
                                              "GPTJForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, LlamaForCausalLM, "
                                              "MistralForCausalLM, MptForCausalLM, Olmo2ForCausalLM, Phi3ForCausalLM, "
                                              "Qwen2ForCausalLM, Qwen3ForCausalLM, SmolLM3ForCausalLM$"):
        convert(broken, tmp_path / "x.gguf")
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ConversionError, match="no tokenizer.json or tokenizer.model"):
        convert(broken, tmp_path / "x.gguf")
    shutil.copy(tiny_llama / "tokenizer.json", broken / "tokenizer.json")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ConversionError, match="corrupt or unreadable safetensors"):
        convert(broken, tmp_path / "x.gguf")
    assert list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".*tmp*")) == []
    with pytest.raises(QuantizeError, match="unknown quantization type 'q3'"):
        quantize(tmp_path / "x.gguf", tmp_path / "y.gguf", "q3")


def test_stage_writes_files_report_and_registry_entries(tiny_llama: Path, tmp_path: Path,
                                                         isolated_state: Path) -> None:
    text = tmp_path / "held_out.jsonl"
    text.write_text("".join(json.dumps({"output": f"Sentence number {i} talks about rivers and hills."}) + "\n"
                            for i in range(200)))
    cfg = load_config(None, [f"quantize.source={tiny_llama}", "run.name=tiny", f"run.runs_dir={isolated_state / 'runs'}",
                             "quantize.types=[q4_0, q8_0]", f"quantize.quality.text_file={text}",
                             "quantize.quality.tokens=256", "quantize.quality.window=128"])
    manifest, _ = execute(STAGES["quantize"], cfg, RunDir(cfg.run_dir()))
    out = isolated_state / "runs" / "tiny" / "quantize"
    assert sorted(p.name for p in out.glob("*.gguf")) == ["tiny-f16.gguf", "tiny-q4_0.gguf", "tiny-q8_0.gguf"]
    entries = json.loads((out / "models.json").read_text())
    assert [e["name"] for e in entries] == ["tiny-f16", "tiny-q4_0", "tiny-q8_0"]
    assert all(len(e["sha256"]) == 64 and e["filesize"] > 0 and e["type"] == "Llama" for e in entries)
    report = json.loads((out / "report.json").read_text())
    assert [r["type"] for r in report["rows"]] == ["hf (fp32)", "f16", "q4_0", "q8_0"]
    assert report["rows"][1]["top1_agreement"] >= 0.95
    assert manifest.counts["files"] == 3
    name, path = Registry.default().resolve("tiny-q8_0")
    assert path == out / "tiny-q8_0.gguf"


def test_stage_keeps_llama_cpp_log_in_the_run_and_prints_a_summary(tiny_llama: Path, tmp_path: Path,
                                                                   isolated_state: Path) -> None:
    """`python -m pipeline quantize`: llama.cpp's per-tensor lines go to quantize/llama.log, the terminal gets a
    progress bar and one line per file (type, size, agreement)."""
    text = tmp_path / "held_out.jsonl"
    text.write_text("".join(json.dumps({"output": f"Sentence number {i} talks about rivers."}) + "\n" for i in range(99)))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "quantize", "--config", "configs/tiny.yaml", "--run-dir",
         str(tmp_path / "run"), f"quantize.source={tiny_llama}", "quantize.types=[q8_0, q4_0]",
         f"quantize.quality.text_file={text}", "quantize.quality.tokens=256", "quantize.quality.window=128"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "run" / "quantize" / "llama.log").read_text()
    assert "converting to q8_0" in log and "converting to q4_0" in log
    assert "converting to" not in done.stdout + done.stderr
    assert re.search(r"quantize: q8_0 +[\d.]+ MB  top-1 vs HF [01]\.\d{3}", done.stderr)
    assert re.search(r"quantize: q4_0 +[\d.]+ MB  top-1 vs HF [01]\.\d{3}", done.stderr)
