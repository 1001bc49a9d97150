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
