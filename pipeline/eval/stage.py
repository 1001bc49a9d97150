"""eval: the seven tasks on the HF model and on the quantized GGUF that ships -> eval/results.json,
self-instruct perplexity histograms, and the leaderboard (runs + published rows)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.artifacts import RunDir, write_json
from pipeline.config import PipelineConfig
from pipeline.eval import leaderboard, self_instruct
from pipeline.eval.tasks import check_tasks, run_tasks, write_offline_tasks
from pipeline.hf_models import resolve_model


def hf_source(cfg: PipelineConfig, run: RunDir) -> str | Path:
    if cfg.eval.hf_model:
        return resolve_model(cfg.eval.hf_model)
    merged = run.root / "train" / "merged"
    return merged if merged.is_dir() else resolve_model(cfg.train.base_model)


def gguf_path(cfg: PipelineConfig, run: RunDir) -> Path:
    if cfg.eval.gguf:
        path = Path(cfg.eval.gguf)
    else:
        path = run.root / "quantize" / f"{cfg.run.name}-{cfg.quantize.types[0]}.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"eval: GGUF not found: {path} (run quantize first, or set eval.gguf)")
    return path


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    paths = []
    if "gguf" in cfg.eval.backends:
        paths.append(gguf_path(cfg, run))
    source = hf_source(cfg, run) if "hf" in cfg.eval.backends else None
    if isinstance(source, Path):
        paths += sorted(source.glob("*.safetensors"))
    return paths


def load_backend(kind: str, cfg: PipelineConfig, run: RunDir) -> tuple[str, Any]:
    """(label, lm-eval LM) for one backend; a model that does not load is a clear error."""
    if kind == "hf":
        from lm_eval.models.huggingface import HFLM

        source = hf_source(cfg, run)
        try:
            return f"hf:{Path(str(source)).name}", HFLM(pretrained=str(source), device="cpu",
                                                         batch_size=cfg.eval.batch_size)
        except (OSError, ValueError) as exc:
            raise ValueError(f"eval: the HF model {source} does not load: {exc}") from None
    from pipeline.eval.llamacpp_lm import LlamaCppLM

    path = gguf_path(cfg, run)
    try:
        return f"gguf:{path.name}", LlamaCppLM(str(path))
    except ValueError as exc:
        raise ValueError(f"eval: {path} does not load in llama.cpp: {exc}") from None


def run(cfg: PipelineConfig, run_dir: RunDir) -> dict[str, int | float]:
    e = cfg.eval
    check_tasks(e.tasks)
    out = run_dir.stage_dir("eval")
    offline = write_offline_tasks(e.tasks, cfg.data_dir, out / "tasks") if e.source == "offline" else None
    pairs = self_instruct.load_pairs(cfg.data_dir, e.self_instruct_limit) if e.self_instruct else []
    tokenizer = None
    if pairs:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(hf_source(cfg, run_dir))
    models: dict[str, Any] = {}
    for kind in e.backends:
        label, lm = load_backend(kind, cfg, run_dir)
        started = time.perf_counter()
        tasks = run_tasks(lm, e.tasks, e.limit, offline)
        entry: dict[str, Any] = {"backend": kind, "tasks": tasks, "seconds": round(time.perf_counter() - started, 1),
                                 "average": round(sum(t["value"] for t in tasks.values()) / len(tasks), 4)}
        if pairs:
            values = self_instruct.perplexities(lm, tokenizer, pairs)
            entry["self_instruct"] = self_instruct.summary(values)
            self_instruct.histogram(values, label, out / f"self_instruct_{kind}.png")
        models[label] = entry
    write_json(out / "results.json", {"run": cfg.run.name, "limit": e.limit, "source": e.source, "models": models})
    leaderboard.build(cfg.run.runs_dir, out)
    counts: dict[str, int | float] = {}
    for label, entry in models.items():
        counts[f"{entry['backend']}_average"] = round(100 * entry["average"], 2)
        if "self_instruct" in entry:
            counts[f"{entry['backend']}_self_instruct_median_ppl"] = entry["self_instruct"]["median"]
    return counts
