from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_file_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.run.name


def test_tiny_config_values_and_overrides() -> None:
    cfg = load_config(ROOT / "configs/tiny.yaml", ["train.lora.r=4", "run.name=other", "eval.tasks=[piqa, boolq]",
                                                  "collect.teacher.base_url=http://127.0.0.1:9/v1"])
    assert cfg.train.lora.r == 4
    assert cfg.run.name == "other"
    assert cfg.eval.tasks == ["piqa", "boolq"]
    assert cfg.collect.teacher.base_url == "http://127.0.0.1:9/v1"
    assert cfg.run_dir() == Path("runs/other")


def test_unknown_keys_and_wrong_types_are_all_reported_with_paths(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("collect:\n  teacher:\n    bogus: 1\ntrain:\n  learning_rate: fast\n  method: qlora\n")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    message = str(info.value)
    assert str(file) in message
    assert "3 problem(s)" in message
    assert "collect.teacher.bogus: Extra inputs are not permitted" in message
    assert "train.learning_rate" in message and "'fast'" in message
    assert "train.method" in message


def test_override_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train\.lora\.rank: Extra inputs"):
        load_config(None, ["train.lora.rank=8"])
    with pytest.raises(ConfigError, match="run.name is a value, not a section"):
        load_config(ROOT / "configs/tiny.yaml", ["run.name.x=1"])
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config(None, ["train.lora.r"])
    with pytest.raises(ConfigError, match=r"train\.batch_size: Input should be greater than or equal to 1"):
        load_config(None, ["train.batch_size=0"])


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_section_hash_tracks_only_its_section_and_run_wide_settings() -> None:
    base = load_config(None)
    assert base.section_hash("train") == load_config(None, ["eval.limit=5"]).section_hash("train")
    assert base.section_hash("train") != load_config(None, ["train.lora.r=4"]).section_hash("train")
    assert base.section_hash("train") != load_config(None, ["run.seed=1"]).section_hash("train")
