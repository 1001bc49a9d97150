"""The seven GPT4All tasks through lm-eval (as a library), zero-shot.

Online: lm-eval's own tasks (they download their hub datasets). Offline: for each task a YAML that
`include`s lm-eval's own task file and only swaps where the documents come from (a JSON file made from
data_dir in the hub layout), so prompts, choices and metrics are exactly lm-eval's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.eval.offline_data import TASKS, write_task_data

# The report's Table 1 metric per task: acc, or acc_norm for HellaSwag, ARC and OBQA.
METRIC = {"boolq": "acc", "piqa": "acc", "hellaswag": "acc_norm", "winogrande": "acc", "arc_easy": "acc_norm",
          "arc_challenge": "acc_norm", "openbookqa": "acc_norm"}
OFFLINE_PREFIX = "gpt4all_offline_"


# Where lm-eval keeps its own definition of each task (inside the installed package).
TASK_FILES = {"boolq": "super_glue/boolq/default.yaml", "piqa": "piqa/piqa.yaml", "hellaswag": "hellaswag/hellaswag.yaml",
              "winogrande": "winogrande/default.yaml", "arc_easy": "arc/arc_easy.yaml",
              "arc_challenge": "arc/arc_challenge.yaml", "openbookqa": "openbookqa/openbookqa.yaml"}


def lm_eval_task_file(task: str) -> Path:
    """lm-eval's own YAML for a task (looked up directly: indexing every lm-eval task takes ~12 s)."""
    import lm_eval.tasks

    path = Path(lm_eval.tasks.__file__).parent / TASK_FILES[task]
    if not path.is_file():
        raise FileNotFoundError(f"lm-eval's definition of {task} is not at {path}; is lm-eval 0.4.x installed?")
    return path


def write_offline_tasks(tasks: list[str], data_dir: Path, out_dir: Path) -> Path:
    """One YAML per task under out_dir, each reading its documents from a local JSON file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        split, data_file = write_task_data(task, data_dir, out_dir / "data")
        spec: dict[str, Any] = {
            "include": str(lm_eval_task_file(task)),
            "task": OFFLINE_PREFIX + task,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: str(data_file)}},
            "training_split": None,
            "validation_split": split if split == "validation" else None,
            "test_split": split if split == "test" else None,
        }
        (out_dir / f"{task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out_dir


def check_tasks(tasks: list[str]) -> None:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"eval.tasks: unknown {unknown}; the seven GPT4All tasks are {', '.join(TASKS)}")


def run_tasks(model: Any, tasks: list[str], limit: int | None,
              offline_dir: Path | None) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({task: {metric, value, stderr, acc, acc_norm, ...}}, {task: {document id: the metric's 0/1 score}})
    for an lm-eval LM, zero-shot; the second part is what paired comparisons read."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    check_tasks(tasks)
    if offline_dir is not None:
        manager = TaskManager(include_path=str(offline_dir), include_defaults=False)
        names = [OFFLINE_PREFIX + t for t in tasks]
    else:
        manager = TaskManager()
        names = list(tasks)
    output = simple_evaluate(model=model, tasks=names, num_fewshot=0, limit=limit, task_manager=manager,
                             bootstrap_iters=1000, log_samples=True)
    results, per_document = {}, {}
    for task, name in zip(tasks, names, strict=True):
        raw = output["results"][name]
        metric = METRIC[task]
        results[task] = {"metric": metric, "value": raw[f"{metric},none"],
                         "stderr": raw.get(f"{metric}_stderr,none"),
                         **{k.split(",")[0]: v for k, v in raw.items() if "," in k and "stderr" not in k}}
        per_document[task] = {str(s["doc_id"]): float(s[metric]) for s in output["samples"][name]}
    return results, per_document
