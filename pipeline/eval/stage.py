"""eval: the seven tasks on the HF model and on the quantized GGUF that ships, and on the base model beside
them (paired comparisons on the same documents) -> eval/results.json, self-instruct perplexity histograms,
and the leaderboard (runs + published rows). Scores are cached per document (score_cache)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM

from pipeline.artifacts import RunDir, write_json
from pipeline.config import PipelineConfig
from pipeline.eval import leaderboard, paired, self_instruct
from pipeline.eval.score_cache import CachedLM, ScoreCache
from pipeline.eval.tasks import check_tasks, run_tasks, write_offline_tasks
from pipeline.hf_models import resolve_model

CACHE_FILE = "eval-cache.sqlite"  # under run.runs_dir: shared by the runs there (a base model scores once)


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


def base_source(cfg: PipelineConfig) -> str | Path:
    return resolve_model(cfg.train.base_model)


def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
    paths = []
    if "gguf" in cfg.eval.backends:
        paths.append(gguf_path(cfg, run))
    sources = [hf_source(cfg, run)] if "hf" in cfg.eval.backends else []
    if cfg.eval.compare_base:
        sources.append(base_source(cfg))
    for source in sources:
        if isinstance(source, Path):
            paths += sorted(source.glob("*.safetensors"))
    return sorted(set(paths))


def load_hf(source: str | Path, batch_size: int) -> LM:
    """Our shared-prefix HF scorer; a model that does not load is a clear error."""
    from pipeline.eval.hf_lm import SharedPrefixHFLM

    try:
        return SharedPrefixHFLM(pretrained=str(source), device="cpu", batch_size=batch_size)
    except (OSError, ValueError) as exc:
        raise ValueError(f"eval: the HF model {source} does not load: {exc}") from None


def load_gguf(path: Path) -> LM:
    from pipeline.eval.llamacpp_lm import LlamaCppLM

    try:
        return LlamaCppLM(str(path))
    except ValueError as exc:
        raise ValueError(f"eval: {path} does not load in llama.cpp: {exc}") from None


def scorer(kind: str, source: str | Path, cfg: PipelineConfig, cache: ScoreCache | None) -> LM:
    """The backend's LM, behind the score cache when there is one and the model is a local file/folder
    (then it loads only if some document is not cached)."""
    def load() -> LM:
        return load_hf(source, cfg.eval.batch_size) if kind == "hf" else load_gguf(Path(source))

    if cache is None or not isinstance(source, Path):
        return load()
    return CachedLM(load, cache, cache.fingerprint(kind, source))


def evaluate(lm: LM, backend: str, cfg: PipelineConfig, offline: Path | None) -> tuple[dict[str, Any], dict]:
    """(results entry, per-document scores) of one model on the configured tasks."""
    started = time.perf_counter()
    tasks, per_document = run_tasks(lm, cfg.eval.tasks, cfg.eval.limit, offline)
    entry: dict[str, Any] = {"backend": backend, "tasks": tasks, "seconds": round(time.perf_counter() - started, 1),
                             "average": round(sum(t["value"] for t in tasks.values()) / len(tasks), 4)}
    if isinstance(lm, CachedLM):
        entry["requests"] = {"computed": lm.computed, "cached": lm.cached}
    return entry, per_document


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
    cache = ScoreCache(cfg.run.runs_dir / CACHE_FILE) if e.cache else None
    models: dict[str, Any] = {}
    documents: dict[str, dict] = {}
    for kind in e.backends:
        source = hf_source(cfg, run_dir) if kind == "hf" else gguf_path(cfg, run_dir)
        label = f"{kind}:{Path(str(source)).name}"
        lm = scorer(kind, source, cfg, cache)
        models[label], documents[label] = evaluate(lm, kind, cfg, offline)
        if pairs:
            values = self_instruct.perplexities(lm, tokenizer, pairs)
            models[label]["self_instruct"] = self_instruct.summary(values)
            self_instruct.histogram(values, label, out / f"self_instruct_{kind}.png")
    comparisons: list[dict[str, Any]] = []
    if e.compare_base:
        source = base_source(cfg)
        base = f"base hf:{Path(str(source)).name}"
        models[base], documents[base] = evaluate(scorer("hf", source, cfg, cache), "hf", cfg, offline)
        models[base]["role"] = "base"
        comparisons = [row for label in models if label != base
                       for row in paired.compare(label, base, documents[label], documents[base], cfg.run.seed)]
    if cache is not None:
        cache.close()
    write_json(out / "results.json", {"run": cfg.run.name, "limit": e.limit, "source": e.source, "models": models,
                                      "comparisons": comparisons})
    leaderboard.build(cfg.run.runs_dir, out)
    counts: dict[str, int | float] = {}
    for label, entry in models.items():
        prefix = "base" if entry.get("role") == "base" else entry["backend"]
        counts[f"{prefix}_average"] = round(100 * entry["average"], 2)
        if "self_instruct" in entry:
            counts[f"{entry['backend']}_self_instruct_median_ppl"] = entry["self_instruct"]["median"]
    for row in comparisons:
        if row["task"] == "average":
            counts[f"{row['model'].split(':')[0]}_delta_vs_base"] = round(100 * row["delta"], 2)
    return counts

