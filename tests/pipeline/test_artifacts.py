from pathlib import Path

import pytest

from pipeline.artifacts import RunDir, Stage, execute
from pipeline.config import PipelineConfig, load_config
from pipeline.records import read_records, write_records
from tests.pipeline.test_records import pair


def copy_stage(calls: list[str], fail: bool = False) -> Stage:
    """A real stage for the harness: copies collect/pairs.jsonl into curate/pairs.jsonl."""

    def inputs(cfg: PipelineConfig, run: RunDir) -> list[Path]:
        return [run.root / "collect" / "pairs.jsonl"]

    def run_stage(cfg: PipelineConfig, run: RunDir) -> dict[str, int]:
        calls.append("run")
        records = list(read_records(run.root / "collect" / "pairs.jsonl"))
        if fail:
            raise RuntimeError("boom")
        kept = write_records(run.stage_dir("curate") / "pairs.jsonl", records)
        return {"in": len(records), "kept": kept}

    return Stage("curate", run_stage, inputs)


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    run = RunDir(tmp_path / "runs" / "t")
    write_records(run.stage_dir("collect") / "pairs.jsonl", [pair("q1", "a1"), pair("q2", "a2")])
    return run


def test_manifest_records_config_inputs_counts_and_versions(run: RunDir) -> None:
    calls: list[str] = []
    manifest, ran = execute(copy_stage(calls), load_config(None), run)
    assert ran and calls == ["run"]
    saved = run.read_manifest("curate")
    assert saved == manifest
    assert saved.counts == {"in": 2, "kept": 2}
    assert list(saved.inputs) == [str(run.root / "collect" / "pairs.jsonl")]
    assert len(next(iter(saved.inputs.values()))) == 64
    assert saved.config["skip_bad"] is False and saved.seed == 42
    assert "torch" in saved.versions and saved.finished >= saved.started


def test_unchanged_stage_is_skipped_and_changes_rerun_it(run: RunDir) -> None:
    calls: list[str] = []
    stage, cfg = copy_stage(calls), load_config(None)
    execute(stage, cfg, run)
    assert execute(stage, cfg, run)[1] is False
    assert execute(stage, load_config(None, ["train.lora.r=2"]), run)[1] is False  # another stage's section
    assert execute(stage, load_config(None, ["curate.skip_bad=true"]), run)[1] is True
    write_records(run.root / "collect" / "pairs.jsonl", [pair("q3", "a3")])
    cfg2 = load_config(None, ["curate.skip_bad=true"])
    assert execute(stage, cfg2, run)[1] is True
    assert execute(stage, cfg2, run, force=True)[1] is True
    assert calls == ["run"] * 4


def test_failed_stage_writes_no_manifest_and_missing_input_is_named(run: RunDir, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        execute(copy_stage([], fail=True), load_config(None), run)
    assert run.read_manifest("curate") is None
    empty = RunDir(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"collect/pairs\.jsonl"):
        execute(copy_stage([]), load_config(None), empty)
