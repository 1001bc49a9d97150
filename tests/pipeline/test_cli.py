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


@pytest.mark.parametrize("recipe", ["gpt4all-lora-7b", "gpt4all-j", "snoozy"])
def test_paper_recipes_dry_run_plans_requests_cost_and_gpu_hours(recipe: str) -> None:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "pipeline", "all", "--config", f"configs/{recipe}.yaml", "--dry-run"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "requests to gpt-3.5-turbo at https://api.openai.com/v1" in out.stdout
    assert "estimated cost at most $" in out.stdout and "A100-hours per 100,000 examples" in out.stdout
    assert "not counted, cannot be read here: oig/unified_chip2" in out.stdout  # hub sources, offline
