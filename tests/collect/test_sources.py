from pathlib import Path

import pytest

from pipeline.collect.sources import SourceError, gather_prompts
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


def prompts_of(*sources: str, extra: list[str] | None = None) -> list[tuple[str, str]]:
    cfg = load_config(None, [f"collect.sources=[{', '.join(sources)}]", f"data_dir={DATA}", *(extra or [])])
    prompts, _ = gather_prompts(cfg.collect, cfg.data_dir, cfg.run.seed)
    return [(p.source, p.text) for p in prompts]


def test_creative_prompts_are_seeded_and_distinct() -> None:
    first = prompts_of('{type: creative, n: 10}')
    assert len(first) == len(set(first)) == 10
    assert first == prompts_of('{type: creative, n: 10}')
    assert first != prompts_of('{type: creative, n: 10}', extra=["run.seed=7"])
    assert all(text.startswith("Write a ") and " in the style of " in text for _, text in first)


def test_alpaca_seed_tasks_with_input_from_the_data_dir() -> None:
    prompts = prompts_of('{type: jsonl, name: seed, path: "{data_dir}/instruct/alpaca_seed_tasks.jsonl", '
                         'prompt_field: instruction, input_field: instances.0.input}')
    assert len(prompts) == 175
    with_input = [t for _, t in prompts if "\n\n" in t]
    assert with_input and all(not t.startswith("\n") for _, t in prompts)


def test_gzipped_alpaca_json_with_limit_and_cap() -> None:
    prompts = prompts_of('{type: json, name: alpaca, path: "{data_dir}/instruct/alpaca_5000_subset.json.gz", '
                         'prompt_field: instruction, input_field: input, limit: 30}', '{type: creative, n: 50}',
                         extra=["collect.max_prompts=40"])
    assert [s for s, _ in prompts] == ["alpaca"] * 30 + ["creative"] * 10


def test_hf_source_with_local_data_files(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"q": {"text": "first?"}}\n{"q": {"text": "second?"}}\n{"q": {"text": "first?"}}\n')
    cfg = load_config(None, [f"collect.sources=[{{type: hf, name: local, dataset: json, data_files: [{data}], "
                             "prompt_field: q.text}]"])
    prompts, stats = gather_prompts(cfg.collect, cfg.data_dir, 42)
    assert [p.text for p in prompts] == ["first?", "second?"] and stats.duplicates == 1


def test_bad_sources_name_the_place(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"instruction": "fine"}\n{"other": 1}\n')
    with pytest.raises(SourceError, match=rf"{rows}:2: field 'instruction' is missing"):
        prompts_of(f'{{type: jsonl, name: x, path: "{rows}", prompt_field: instruction}}')
    with pytest.raises(SourceError, match="file not found"):
        prompts_of(f'{{type: jsonl, name: x, path: "{tmp_path}/nope.jsonl"}}')
    with pytest.raises(Exception, match="collect.sources.0"):
        prompts_of('{type: csv, name: x}')


def test_prompt_pattern_extracts_the_human_turn(tmp_path: Path) -> None:
    rows = tmp_path / "oig.jsonl"
    rows.write_text('{"text": "<human>: What is rain?\\n<bot>: Water falling."}\n{"text": "no turns here"}\n')
    prompts, stats = gather_prompts(load_config(None, [
        f'collect.sources=[{{type: jsonl, name: oig, path: "{rows}", prompt_field: text, '
        'prompt_pattern: "<human>:\\\\s*(.*?)\\\\s*<bot>:"}]']).collect, tmp_path, 0)
    assert [p.text for p in prompts] == ["What is rain?"] and stats.empty == 1


def test_reproduction_recipes_import_the_released_sets_and_recollect_names_the_prompt_sources() -> None:
    expected = {"gpt4all-lora-7b": ("nomic-ai/gpt4all_prompt_generations", None),
                "gpt4all-j": ("nomic-ai/gpt4all-j-prompt-generations", "v1.3-groovy"),
                "snoozy": ("nomic-ai/gpt4all-j-prompt-generations", "v1.3-groovy")}
    for name, (dataset, revision) in expected.items():
        (src,) = load_config(ROOT / "configs" / f"{name}.yaml").collect.sources
        assert (src.type, src.dataset, src.revision, src.format) == ("import", dataset, revision, "gpt4all")
    cfg = load_config(ROOT / "configs" / "recollect.yaml")
    assert cfg.collect.teacher.api_key_env == "OPENAI_API_KEY"
    assert {s.name for s in cfg.collect.sources} >= {"oig/unified_chip2", "stackoverflow", "p3/cos_e", "creative"}
