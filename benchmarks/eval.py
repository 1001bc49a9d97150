"""The base SmolLM2-135M-Instruct on the seven GPT4All tasks, HF backend vs the shipped Q4_1 GGUF.

    python -m benchmarks.eval [--limit 100]
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
from pipeline.eval.leaderboard import TASKS
from runtime.registry import bundled_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100)
    args = parser.parse_args()
    entry = bundled_entry()
    assert entry is not None and entry.path is not None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("configs/tiny.yaml", [
            "eval.hf_model=bundled:SmolLM2-135M-Instruct", f"eval.gguf={entry.path}", f"run.runs_dir={tmp}",
            "run.name=smollm2-base", f"eval.limit={args.limit}", "eval.self_instruct=true"])
        execute(STAGES["eval"], cfg, RunDir(cfg.run_dir()), force=True)
        results = json.loads((Path(tmp) / "smollm2-base" / "eval" / "results.json").read_text())
    rows = []
    for label, model in results["models"].items():
        row = {"backend": label}
        row.update({t: f"{100 * model['tasks'][t]['value']:.1f} ± {100 * model['tasks'][t]['stderr']:.1f}" for t in TASKS})
        row["average"] = f"{100 * model['average']:.1f}"
        row["self-instruct ppl (median)"] = model["self_instruct"]["median"]
        row["time"] = f"{model['seconds']:.0f} s"
        rows.append(row)
    save("eval", {
        "title": f"eval: base SmolLM2-135M-Instruct, seven tasks, first {args.limit} documents each",
        "setup": "Zero-shot, lm-eval 0.4.13's own task definitions over data_dir (acc; acc_norm for HellaSwag, "
                 "ARC-e, ARC-c, OBQA), in percent with bootstrap stderr. HF = the model dequantized from the bundled "
                 "GGUF (fp32, transformers, batch 8); GGUF = the bundled Q4_1 file itself through llama.cpp in-process. "
                 "Time covers the seven tasks; self-instruct uses the config's eval.self_instruct_limit (50 in tiny.yaml).",
        "rows": rows,
        "notes": [f"limit {args.limit}: read the ± columns (bootstrap stderr); the full sets (20,465 documents) would take "
                  "hours per backend on 2 cores.",
                  "The two backends differ by the Q4_1 quantization of the weights and llama.cpp's quantized "
                  "activations; at F16 they agree within 1 point (tests/eval)."],
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    })


if __name__ == "__main__":
    main()
