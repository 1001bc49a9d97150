"""quantize: HF model -> quantize/<run>-<outtype>.gguf and one file per quantization type, a quality
report (perplexity, top-1 agreement with the HF model) and models.json entries the runtime finds by name."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.artifacts import RunDir, atomic_path, write_json
from pipeline.config import PipelineConfig
from pipeline.hf_models import resolve_model
from pipeline.quantize.convert import convert, read_config
from pipeline.quantize.quality import Scores, gguf_scores, hf_scores, read_texts, windows
from pipeline.quantize.quantizer import PUBLISHED_PPL_DELTA_7B, llama_log, quantize
from runtime.registry import file_digest


def source_dir(cfg: PipelineConfig, run: RunDir) -> Path:
    """The model to convert: quantize.source, else the run's train/merged/."""
    if cfg.quantize.source:
        resolved = resolve_model(cfg.quantize.source)
        if not isinstance(resolved, Path):
            from huggingface_hub import snapshot_download

            resolved = Path(snapshot_download(resolved))
        return resolved
    merged = run.root / "train" / "merged"
    if not merged.is_dir():
        raise FileNotFoundError(f"{merged} not found: run train first, or set quantize.source")
    return merged


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    model_dir = source_dir(cfg, run)
    return sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".jinja"))


def parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(file, framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())  # noqa: SIM118
    return total


def human(count: int) -> str:
    return f"{count / 1e9:.1f} billion" if count >= 1e9 else f"{count / 1e6:.0f} million"


def chat_template(model_dir: Path) -> str | None:
    if (path := model_dir / "chat_template.jinja").is_file():
        return path.read_text()
    config = model_dir / "tokenizer_config.json"
    return json.loads(config.read_text()).get("chat_template") if config.is_file() else None


def models_entry(path: Path, run_name: str, kind: str, model_dir: Path, params: int) -> dict[str, Any]:
    """A GPT4All models3.json-style entry for one file."""
    size = path.stat().st_size
    arch = (read_config(model_dir).get("architectures") or ["?"])[0].removesuffix("ForCausalLM")
    return {"name": f"{run_name}-{kind}", "filename": path.name, "md5sum": file_digest(path, "md5"),
            "sha256": file_digest(path), "filesize": size,
            "ramrequired": round(size / 1e9 + 0.5, 1), "parameters": human(params), "quant": kind.upper(),
            "type": arch, "chatTemplate": chat_template(model_dir), "systemPrompt": "", "url": None,
            "description": f"{run_name}: {arch} fine-tuned by gpt4all-pipeline, {kind.upper()}"}


def quality_rows(cfg: PipelineConfig, model_dir: Path, files: dict[str, Path]) -> list[dict[str, Any]]:
    from transformers import AutoTokenizer

    q = cfg.quantize.quality
    text = read_texts(Path(q.text_file.replace("{data_dir}", str(cfg.data_dir))), q.field, q.tokens * 8)
    tokens = AutoTokenizer.from_pretrained(model_dir)(text)["input_ids"][: q.tokens]
    chunks = windows(tokens, min(q.window, len(tokens)))
    reference = hf_scores(model_dir, chunks)
    scored: dict[str, Scores] = {kind: gguf_scores(path, chunks) for kind, path in files.items()}
    base = scored[cfg.quantize.outtype].perplexity
    rows = [{"type": "hf (fp32)", "size_mb": None, "perplexity": round(reference.perplexity, 4),
             "ppl_delta": None, "top1_agreement": 1.0, "published_ppl_delta_7b": None}]
    for kind, s in scored.items():
        rows.append({"type": kind, "size_mb": round(files[kind].stat().st_size / 1e6, 1),
                     "perplexity": round(s.perplexity, 4), "ppl_delta": round(s.perplexity - base, 4),
                     "top1_agreement": round(float((s.top1 == reference.top1).mean()), 4),
                     "published_ppl_delta_7b": PUBLISHED_PPL_DELTA_7B.get(kind)})
    return rows


def markdown(rows: list[dict[str, Any]], scored_tokens: int) -> str:
    lines = ["# Quantization report", "",
             f"Perplexity on {scored_tokens} held-out tokens; top-1 = share of positions where the file's most "
             "likely next token equals the HF model's. The last column is llama.cpp's published perplexity "
             "increase for LLaMA-v1-7B (reference, not measured here; small models lose more).", "",
             "| type | size (MB) | perplexity | Δ vs unquantized | top-1 vs HF | published Δ (7B) |", "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["type"], r["size_mb"], r["perplexity"], r["ppl_delta"], r["top1_agreement"], r["published_ppl_delta_7b"]]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_lines(files: dict[str, Path], rows: list[dict[str, Any]]) -> list[str]:
    """One line per file: type, size and, with the quality check, top-1 agreement with the HF model."""
    agreement = {r["type"]: r["top1_agreement"] for r in rows}
    return [f"quantize: {kind:6} {path.stat().st_size / 1e6:8.1f} MB" +
            (f"  top-1 vs HF {agreement[kind]:.3f}" if kind in agreement else "") for kind, path in files.items()]


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    q = cfg.quantize
    model_dir = source_dir(cfg, run_dir)
    out = run_dir.stage_dir("quantize")
    name = cfg.run.name
    started = time.perf_counter()
    files = {q.outtype: convert(model_dir, out / f"{name}-{q.outtype}.gguf", q.outtype, name, progress=True)}
    convert_s = time.perf_counter() - started
    log = out / "llama.log"  # llama.cpp's per-tensor lines, kept out of the terminal
    log.unlink(missing_ok=True)
    for kind in q.types:
        files[kind] = quantize(files[q.outtype], out / f"{name}-{kind}.gguf", kind, log=log)
    params = parameter_count(model_dir)
    entries = [models_entry(path, name, kind, model_dir, params) for kind, path in files.items()]
    with atomic_path(out / "models.json") as tmp:
        tmp.write_text(json.dumps(entries, indent=2) + "\n")
    with log.open("a") as text, llama_log(text):  # loading each file for the quality check logs too
        rows = quality_rows(cfg, model_dir, files) if q.quality.enabled else []
    for line in summary_lines(files, rows):
        tqdm.write(line, file=sys.stderr)
    write_json(out / "report.json", {"model": str(model_dir), "convert_seconds": round(convert_s, 2), "rows": rows})
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(markdown(rows, q.quality.tokens) if rows else "# Quantization report\n\nQuality check disabled.\n")
    counts: dict[str, int | float] = {"files": len(files), "parameters": params, "convert_seconds": round(convert_s, 2)}
    for row in rows[1:]:
        counts[f"top1_{row['type']}"] = row["top1_agreement"]
    return counts
