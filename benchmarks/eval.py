"""Scoring speed on the seven GPT4All tasks: our shared-prefix HF scorer vs lm-eval 0.4's own HFLM at batch 8
(the way its users run it), same documents, same model (the bundled SmolLM2-135M-Instruct dequantized to fp32
HF weights); the GGUF backend (the bundled Q4_1 through llama.cpp) beside them; how far ours is from the
FLOP rate torch's matmul reaches on this machine.

    python -m benchmarks.eval [--limit 40]      (run under `flock /tmp/heavy.lock` on a shared machine)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from benchmarks.report import save
from pipeline.eval.hf_lm import SharedPrefixHFLM
from pipeline.eval.leaderboard import TASKS
from pipeline.eval.tasks import run_tasks, write_offline_tasks
from pipeline.hf_models import resolve_model, smollm2_gguf

DATA = Path(__file__).resolve().parents[1] / "data"


def scoring_timed(cls: type) -> type:
    """cls with the seconds spent inside loglikelihood (the scoring itself, no lm-eval bookkeeping) summed."""

    class Timed(cls):  # type: ignore[misc, valid-type]
        scoring_seconds = 0.0

        def loglikelihood(self, requests: list, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            start = time.perf_counter()
            try:
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            finally:
                self.scoring_seconds += time.perf_counter() - start

    return Timed


@scoring_timed
class CountingHFLM(SharedPrefixHFLM):
    """Ours, counting the tokens it runs and the positions it computes logits for."""

    tokens = 0
    logit_rows = 0

    def score_pack(self, packed: dict[str, Any], *args: Any) -> dict[int, tuple[float, bool]]:
        self.tokens += packed["input_ids"].shape[1]
        self.logit_rows += len(packed["keep"])
        return super().score_pack(packed, *args)


def matmul_gflops(shapes: list[tuple[int, int, int]], seconds: float = 2.0) -> dict[str, float]:
    """fp32 torch.mm GFLOP/s per (m, k, n) on this machine's threads."""
    rates = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ b
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            runs += 1
        rates[f"{m}x{k} @ {k}x{n}"] = 2 * m * k * n * runs / (time.perf_counter() - start) / 1e9
    return rates


def timed(lm: Any, task: str, limit: int, offline: Path) -> tuple[float, dict, dict]:
    start = time.perf_counter()
    results, per_document = run_tasks(lm, [task], limit, offline)
    return time.perf_counter() - start, results[task], per_document[task]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40, help="documents per task")
    parser.add_argument("--no-gguf", action="store_true", help="leave the GGUF backend out")
    args = parser.parse_args()
    from lm_eval.models.huggingface import HFLM

    from pipeline.eval.llamacpp_lm import LlamaCppLM

    source = resolve_model("bundled:SmolLM2-135M-Instruct")
    ours = CountingHFLM(pretrained=str(source), device="cpu", batch_size=8)
    theirs = scoring_timed(HFLM)(pretrained=str(source), device="cpu", batch_size=8)
    gguf = None if args.no_gguf else LlamaCppLM(str(smollm2_gguf()))
    model = ours.model
    hidden, vocab = model.config.hidden_size, model.config.vocab_size
    body = sum(p.numel() for p in model.parameters()) - vocab * hidden  # tied embedding/head counted apart
    rows, totals = [], {"docs": 0, "ours": 0.0, "hflm": 0.0, "gguf": 0.0, "same": 0, "flops": 0.0,
                    "scoring_ours": 0.0, "scoring_hflm": 0.0}
    accuracy: dict[str, list[float]] = {"ours": [], "hflm": [], "gguf": []}
    with tempfile.TemporaryDirectory() as tmp:
        offline = write_offline_tasks(TASKS, DATA, Path(tmp))
        for k, task in enumerate(TASKS):
            before = (ours.tokens, ours.logit_rows, ours.scoring_seconds, theirs.scoring_seconds)
            # Who goes first alternates from task to task (a shared machine drifts).
            if k % 2:
                t_theirs, r_theirs, d_theirs = timed(theirs, task, args.limit, offline)
                t_ours, r_ours, d_ours = timed(ours, task, args.limit, offline)
            else:
                t_ours, r_ours, d_ours = timed(ours, task, args.limit, offline)
                t_theirs, r_theirs, d_theirs = timed(theirs, task, args.limit, offline)
            t_gguf, r_gguf, _ = timed(gguf, task, args.limit, offline) if gguf else (None, None, None)
            n = len(d_ours)
            flops = 2 * body * (ours.tokens - before[0]) + 2 * hidden * vocab * (ours.logit_rows - before[1])
            same = sum(d_ours[d] == d_theirs[d] for d in d_ours)
            scoring = (ours.scoring_seconds - before[2], theirs.scoring_seconds - before[3])
            totals.update(docs=totals["docs"] + n, ours=totals["ours"] + t_ours, hflm=totals["hflm"] + t_theirs,
                          same=totals["same"] + same, flops=totals["flops"] + flops,
                          gguf=totals["gguf"] + (t_gguf or 0), scoring_ours=totals["scoring_ours"] + scoring[0],
                          scoring_hflm=totals["scoring_hflm"] + scoring[1])
            for side, result in (("ours", r_ours), ("hflm", r_theirs), ("gguf", r_gguf)):
                if result:
                    accuracy[side].append(100 * result["value"])
            rows.append(row(task, n, t_ours, t_theirs, t_gguf, {k: v[-1] for k, v in accuracy.items() if v},
                            f"{same}/{n}", flops / scoring[0], scoring))
            print(rows[-1], flush=True)
    rows.append(row("all seven", totals["docs"], totals["ours"], totals["hflm"], totals["gguf"] if gguf else None,
                    {k: sum(v) / len(v) for k, v in accuracy.items() if v}, f"{totals['same']}/{totals['docs']}",
                    totals["flops"] / totals["scoring_ours"], (totals["scoring_ours"], totals["scoring_hflm"])))
    peaks = matmul_gflops([(384, hidden, model.config.intermediate_size), (384, hidden, hidden), (2048, 2048, 2048)])
    best = max(peaks.values())
    save("eval", {
        "title": f"eval: scoring speed, ours vs lm-eval's HFLM (batch 8), first {args.limit} documents of each task",
        "setup": "Bundled SmolLM2-135M-Instruct dequantized to fp32 HF weights; zero-shot, lm-eval 0.4.13's own task "
                 "definitions over data_dir, each task through `run_tasks` (lm-eval's simple_evaluate) with one backend "
                 "at a time, wall time of the whole call; who goes first alternates per task. Ours = "
                 "pipeline/eval/hf_lm.py (a document's shared prefix once, packed unpadded rows, logits only where "
                 "continuation tokens are predicted); HFLM = lm_eval.models.huggingface.HFLM(batch_size=8); GGUF = the "
                 f"bundled Q4_1 file through llama.cpp in process ({torch.get_num_threads()} threads everywhere).",
        "rows": rows,
        "notes": [f"Accuracy is the task's metric (acc; acc_norm for HellaSwag, ARC, OBQA); 'same' counts documents "
                  "whose 0/1 score is identical under ours and HFLM.",
                  f"Ours in useful model FLOPs: 2 x {body / 1e6:.1f}M non-embedding parameters per token run + "
                  f"2 x {hidden} x {vocab} per logit row (attention left out); torch fp32 matmul on this machine: "
                  + ", ".join(f"{k}: {v:.0f}" for k, v in peaks.items())
                  + f" GFLOP/s, so ours scores at {100 * totals['flops'] / totals['scoring_ours'] / 1e9 / best:.0f}% "
                    "of the best matmul rate (GFLOP/s column: over its scoring time).",
                  "docs/s and ratio: wall time of the whole lm-eval call (task building, filters, metrics included, "
                  "the same on both sides); scoring-only ratio: time inside loglikelihood.",
                  "The full seven sets (20,465 documents) were not timed: a run did not fit in the session that "
                  "wrote this; the per-task documents/s above are measured rates, not a timing of the full sets."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


def row(task: str, n: int, t_ours: float, t_theirs: float, t_gguf: float | None, accuracy: dict[str, float],
        same: str, flop_rate: float, scoring: tuple[float, float]) -> dict[str, Any]:
    return {"task": task, "documents": n, "ours docs/s": f"{n / t_ours:.2f}", "HFLM docs/s": f"{n / t_theirs:.2f}",
            "ratio": f"{t_theirs / t_ours:.2f}x", "scoring-only ratio": f"{scoring[1] / scoring[0]:.2f}x",
            "GGUF Q4_1 docs/s": f"{n / t_gguf:.2f}" if t_gguf else "-",
            "accuracy ours / HFLM / GGUF": " / ".join(f"{v:.1f}" for v in accuracy.values()), "same": same,
            "ours GFLOP/s": f"{flop_rate / 1e9:.0f}"}


if __name__ == "__main__":
    main()
