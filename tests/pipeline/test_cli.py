import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pipeline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_stage() -> None:
    out = pipeline("--help")
    assert out.returncode == 0
    for stage in ("collect", "curate", "train", "eval", "quantize", "all", "config"):
        assert stage in out.stdout


@pytest.mark.parametrize("stage", ["collect", "curate", "train", "eval", "quantize", "all"])
def test_each_stage_has_help_with_the_shared_options(stage: str) -> None:
    out = pipeline(stage, "--help")
    assert out.returncode == 0
    for option in ("--config", "--run-dir", "--force", "overrides"):
        assert option in out.stdout


def test_config_prints_the_resolved_recipe() -> None:
    out = pipeline("config", "--config", "configs/tiny.yaml", "train.lora.r=4")
    assert out.returncode == 0
    assert "r: 4" in out.stdout and "name: tiny" in out.stdout


def test_bad_override_exits_2_naming_the_key() -> None:
    out = pipeline("train", "--config", "configs/tiny.yaml", "train.lora.rank=4")
    assert out.returncode == 2
    assert "train.lora.rank" in out.stderr


def dry_run(recipe: str) -> str:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pipeline", "all", "--config", f"configs/{recipe}.yaml", "--dry-run"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize(("recipe", "dataset", "rows", "hours"), [
    ("gpt4all-lora-7b", "nomic-ai/gpt4all_prompt_generations [train]", "437,605", "51"),
    ("gpt4all-j", "nomic-ai/gpt4all-j-prompt-generations @ v1.3-groovy [train]", "739,259", "58"),
    ("snoozy", "nomic-ai/gpt4all-j-prompt-generations @ v1.3-groovy [train]", "739,259", "125"),
])
def test_reproduction_recipes_dry_run_dataset_rows_tokens_and_gpu_hours_offline(
        recipe: str, dataset: str, rows: str, hours: str) -> None:
    out = dry_run(recipe)
    assert f": {dataset}: {rows} rows (dataset card; not read here)" in out
    assert "collect: imports only, no teacher requests" in out
    assert f"for the {rows} imported rows" in out and f"~{hours} A100-hours" in out


def test_recollect_recipe_plans_requests_and_cost_to_any_teacher() -> None:
    out = dry_run("recollect")
    assert "requests to gpt-4o-mini at https://api.openai.com/v1" in out and "estimated cost at most $" in out
    assert "not counted, cannot be read here: oig/unified_chip2" in out  # hub sources, offline
