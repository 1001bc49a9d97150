"""eval: offline tasks render lm-eval's own requests, HF and GGUF backends agree, leaderboard, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.eval.leaderboard import build
from pipeline.eval.offline_data import write_task_data
from pipeline.eval.tasks import METRIC, OFFLINE_PREFIX, check_tasks, lm_eval_task_file, run_tasks, write_offline_tasks

DATA = Path(__file__).resolve().parents[2] / "data"

# The first document of each task exactly as its Hugging Face dataset (the one lm-eval reads) holds it.
HUB_DOCS = {
    "boolq": {"question": "does ethanol take more energy make that produces", "passage": None, "idx": 0, "label": 0},
    "piqa": {"goal": "How do I ready a guinea pig cage for it's new occupants?", "sol1": None, "sol2": None, "label": 0},
    "hellaswag": {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
                  "ctx_b": "he", "ctx": "A man is sitting on a roof. he",
                  "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                              "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
                  "source_id": "activitynet~v_-JhWjGDPHMY", "split": "val", "split_type": "indomain", "label": "3"},
    "winogrande": {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                   "option1": "Sarah", "option2": "Maria", "answer": "2"},
    "arc_easy": None, "arc_challenge": None, "openbookqa": None,
}


def task_object(name: str, include_path: Path | None = None):  # noqa: ANN201
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(include_path), include_defaults=False) if include_path else TaskManager()
    return get_task_dict([name], manager)[name]


def requests_of(task, doc: dict) -> tuple[str, list[str], object]:  # noqa: ANN001
    return task.doc_to_text(doc), task.doc_to_choice(doc), task.doc_to_target(doc)


def standard_task_on(task: str, doc: dict, tmp_path: Path):  # noqa: ANN201
    """lm-eval's own task definition, reading the given hub-layout document."""
    data = tmp_path / f"hub_{task}.jsonl"
    data.write_text(json.dumps(doc) + "\n")
    spec = tmp_path / "standard" / f"{task}.yaml"
    spec.parent.mkdir(exist_ok=True)
    split = "test" if task in ("arc_easy", "arc_challenge", "openbookqa") else "validation"
    spec.write_text(f"include: {lm_eval_task_file(task)}\ntask: standard_{task}\ntag: []\ndataset_path: json\n"
                    f"dataset_name: null\ndataset_kwargs: {{data_files: {{{split}: {data}}}}}\ntraining_split: null\n"
                    f"validation_split: {split if split == 'validation' else 'null'}\n"
                    f"test_split: {split if split == 'test' else 'null'}\n")
    return task_object(f"standard_{task}", spec.parent)


@pytest.mark.parametrize("task", list(HUB_DOCS))
def test_offline_tasks_render_lm_evals_own_requests(task: str, tmp_path: Path) -> None:
    offline_dir = write_offline_tasks([task], DATA, tmp_path / "offline")
    ours = task_object(OFFLINE_PREFIX + task, offline_dir)
    docs = list(ours.test_docs() if ours.has_test_docs() else ours.validation_docs())
    raw = json.loads((offline_dir / "data" / f"{task}.jsonl").read_text().splitlines()[0])
    hub = HUB_DOCS[task] or raw  # ARC and OBQA already match their hub layout field for field
    hub = {k: (raw[k] if v is None else v) for k, v in hub.items()}
    standard = standard_task_on(task, hub, tmp_path)
    theirs = list(standard.test_docs() if standard.has_test_docs() else standard.validation_docs())
    assert requests_of(ours, docs[0]) == requests_of(standard, theirs[0])
    assert len(docs) == {"boolq": 3270, "piqa": 1838, "hellaswag": 10042, "winogrande": 1267, "arc_easy": 2376,
                         "arc_challenge": 1172, "openbookqa": 500}[task]


@pytest.mark.timeout(1800)  # two backends over 200 documents: ~2.5 min alone, far more on a busy machine
def test_hf_and_f16_gguf_agree_within_one_point(bundled_hf: Path, tmp_path: Path) -> None:
    from lm_eval.models.huggingface import HFLM

    from pipeline.eval.llamacpp_lm import LlamaCppLM
    from pipeline.quantize.convert import convert

    gguf = convert(bundled_hf, tmp_path / "f16.gguf", "f16")
    offline = write_offline_tasks(["piqa"], DATA, tmp_path / "offline")
    hf = run_tasks(HFLM(pretrained=str(bundled_hf), device="cpu", batch_size=8), ["piqa"], 200, offline)[0]["piqa"]
    ours = run_tasks(LlamaCppLM(str(gguf)), ["piqa"], 200, offline)[0]["piqa"]
    assert abs(hf["acc"] - ours["acc"]) <= 0.01 and abs(hf["acc_norm"] - ours["acc_norm"]) <= 0.01
    assert 0.55 < hf["acc"] < 0.8 and hf["stderr"] > 0


def test_leaderboard_is_built_from_results_files(tmp_path: Path) -> None:
    for run, value in (("alpha", 0.5), ("beta", 0.9)):
        (tmp_path / run / "eval").mkdir(parents=True)
        tasks = {t: {"metric": m, "value": value, "stderr": 0.01} for t, m in METRIC.items()}
        (tmp_path / run / "eval" / "results.json").write_text(json.dumps(
            {"run": run, "limit": 100, "models": {"gguf:x.gguf": {"backend": "gguf", "tasks": tasks}}}))
    text = build(tmp_path, tmp_path).read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    names = [line.split(" | ")[0].lstrip("| ") for line in lines]
    assert names.index("beta / gguf:x.gguf") < names.index("text-davinci-003") < names.index("alpha / gguf:x.gguf")
    assert "| GPT4All-13B-Snoozy | published | 83.3 |" in text and "| 90.0 |" in text
    assert (tmp_path / "leaderboard.png").stat().st_size > 5000


def test_bad_input_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown \\['mmlu'\\]; the seven GPT4All tasks are boolq, piqa"):
        check_tasks(["piqa", "mmlu"])
    (tmp_path / "eval").mkdir()
    with pytest.raises(FileNotFoundError, match="piqa data missing under .*piqa_valid"):
        write_task_data("piqa", tmp_path, tmp_path / "out")
    from pipeline.eval.llamacpp_lm import LlamaCppLM

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ValueError, match="Failed to load model"):
        LlamaCppLM(str(bad))
