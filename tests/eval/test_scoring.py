"""Shared-prefix HF scoring == lm-eval's HFLM, the per-document score cache, and the stage's paired comparisons."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.eval.offline_data import TASKS
from pipeline.eval.score_cache import CachedLM, ScoreCache
from pipeline.eval.tasks import OFFLINE_PREFIX, run_tasks, write_offline_tasks

DATA = Path(__file__).resolve().parents[2] / "data"


def task_requests(offline: Path, limit: int) -> list:
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(offline), include_defaults=False)
    requests = []
    for task in TASKS:
        obj = get_task_dict([OFFLINE_PREFIX + task], manager)[OFFLINE_PREFIX + task]
        obj.build_all_requests(limit=limit, rank=0, world_size=1)
        requests += obj.instances
    return requests


def test_shared_prefix_scorer_matches_hflm_on_every_task(tiny_llama: Path, tmp_path: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    from pipeline.eval.hf_lm import SharedPrefixHFLM

    requests = task_requests(write_offline_tasks(list(TASKS), DATA, tmp_path / "offline"), limit=3)
    theirs = HFLM(pretrained=str(tiny_llama), device="cpu", batch_size=8).loglikelihood(requests, disable_tqdm=True)
    ours = SharedPrefixHFLM(pretrained=str(tiny_llama), device="cpu", batch_size=4).loglikelihood(requests, True)
    assert {r.task_name for r in requests} == {OFFLINE_PREFIX + t for t in TASKS} and len(requests) == 66
    for request, (ll, greedy), (their_ll, their_greedy) in zip(requests, ours, theirs, strict=True):
        assert abs(ll - their_ll) < 1e-4, (request.task_name, request.doc_id, ll, their_ll)
        assert greedy == their_greedy


def test_cache_answers_a_rerun_without_loading_the_model(tiny_llama: Path, tmp_path: Path) -> None:
    from pipeline.eval.hf_lm import SharedPrefixHFLM

    offline = write_offline_tasks(["piqa", "arc_easy"], DATA, tmp_path / "offline")
    cache = ScoreCache(tmp_path / "cache.sqlite")
    model = cache.fingerprint("hf", tiny_llama)

    def load() -> SharedPrefixHFLM:
        return SharedPrefixHFLM(pretrained=str(tiny_llama), device="cpu", batch_size=8)

    def must_not_load() -> None:
        raise AssertionError("the model was loaded although every document is cached")

    first = CachedLM(load, cache, model)
    results, per_document = run_tasks(first, ["piqa", "arc_easy"], 4, offline)
    assert (first.computed, first.cached) == (4 * 2 + 4 * 4, 0)  # piqa: 2 choices, these ARC items: 4

    rerun = CachedLM(must_not_load, cache, model)
    assert run_tasks(rerun, ["piqa", "arc_easy"], 4, offline) == (results, per_document)
    assert (rerun.computed, rerun.cached) == (0, 24)

    larger = CachedLM(load, cache, model)
    _, more = run_tasks(larger, ["piqa"], 6, offline)
    assert (larger.computed, larger.cached) == (4, 8) and len(more["piqa"]) == 6  # only documents 5 and 6

    (tiny_llama / "config.json").touch()  # same bytes: still the same model
    assert cache.fingerprint("hf", tiny_llama) == model and cache.fingerprint("gguf", tiny_llama) != model


def test_stage_compares_with_the_base_and_reruns_from_the_cache(tiny_llama: Path, tmp_path: Path) -> None:
    from pipeline.artifacts import RunDir, execute
    from pipeline.cli import STAGES
    from pipeline.config import load_config

    cfg = load_config("configs/tiny.yaml", [
        f"run.runs_dir={tmp_path}", "run.name=t", f"eval.hf_model={tiny_llama}", f"train.base_model={tiny_llama}",
        "eval.backends=[hf]", "eval.tasks=[piqa,winogrande]", "eval.limit=5", "eval.self_instruct=false"])
    execute(STAGES["eval"], cfg, RunDir(cfg.run_dir()), force=True)
    results = json.loads((tmp_path / "t" / "eval" / "results.json").read_text())
    label, base = f"hf:{tiny_llama.name}", f"base hf:{tiny_llama.name}"
    assert results["models"][base]["role"] == "base"
    assert results["models"][label]["requests"] == {"computed": 20, "cached": 0}
    assert results["models"][base]["requests"] == {"computed": 0, "cached": 20}  # the same files: scored once
    rows = {r["task"]: r for r in results["comparisons"]}
    assert list(rows) == ["piqa", "winogrande", "average"]
    for row in rows.values():  # the model against itself
        assert row["model"] == label and row["baseline"] == base and row["delta"] == 0 and row["ci95"] == [0, 0]
    board = (tmp_path / "t" / "eval" / "leaderboard.md").read_text()
    assert "| Δ vs base | base hf:" in board and "+0.0 [+0.0, +0.0]" in board and "±0.0 points per task" in board

    execute(STAGES["eval"], cfg, RunDir(cfg.run_dir()), force=True)
    again = json.loads((tmp_path / "t" / "eval" / "results.json").read_text())
    assert again["models"][label]["requests"] == {"computed": 0, "cached": 20}
    assert again["comparisons"] == results["comparisons"]
