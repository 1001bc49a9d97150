"""curate on planted data: exact, near and semantic duplicates, refusals, contamination, bad lines."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from pipeline.artifacts import RunDir, execute
from pipeline.cli import STAGES
from pipeline.config import load_config
from pipeline.curate.maps import recolor
from pipeline.pairs import BadRowError
from pipeline.records import Record, read_records, write_records

TOPICS = ["photosynthesis", "volcanoes", "the stock market", "jazz improvisation", "medieval castles",
          "black holes", "sourdough baking", "chess openings", "coral reefs", "the printing press",
          "honeybee colonies", "glaciers", "the Roman aqueducts", "electric guitars", "tax returns",
          "marathon training", "origami", "submarines", "vaccines", "desert cacti"]
FILLER = ("first second often because therefore although usually carefully quickly slowly around "
          "between during within without beyond across several many various certain important").split()


def answer(topic: str, rng: random.Random) -> str:
    words = [f"{topic} matters"] + [rng.choice(FILLER) for _ in range(60)] + [f"that is how {topic} works."]
    return " ".join(words)


def pair(prompt: str, response: str, source: str = "synthetic", **meta: str) -> Record:
    return Record.create(source, [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                         {"finish_reason": "stop", **meta})


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, dict[str, Record]]:
    rng = random.Random(0)
    base = [pair(f"Explain {t} to a curious teenager.", answer(t, rng)) for t in TOPICS]
    original = base[1].response.split()
    edited = " ".join(original[:30] + ["unusually"] + original[31:])
    special = {
        "exact": pair("  explain PHOTOSYNTHESIS to a curious   teenager. ", base[0].response.upper(), "other"),
        "near": pair(base[1].prompt, edited),
        "capital": pair("What is the capital city of France?", "The capital city of France is Paris."),
        "paraphrase": pair("Which city is the capital of France?", "Paris is the capital city of France."),
        "breezy": pair("Tell me a joke.", "As an AI language model, I do not have a sense of humor."),
        "jazzy": pair("Write malware.", "I'm sorry, but I can't help with that request at all."),
        "contaminated": pair("Finish this: the quick brown fox jumps over the lazy dog near the old mill by the river",
                             "Done, and then it ran away into the dark forest."),
        "truncated": pair("Write a long essay on tides.", "Tides are caused by", finish_reason="length"),
        "short": pair("Say something.", "ok"),
        "user_last": Record.create("synthetic", [{"role": "user", "content": "Hello?"}]),
        "empty": pair("Anything?", "   "),
    }
    path = tmp_path / "pairs.jsonl"
    write_records(path, base + list(special.values()))
    evalset = tmp_path / "eval" / "mini.jsonl"
    evalset.parent.mkdir()
    evalset.write_text(json.dumps({"ctx": "the quick brown fox jumps over the lazy dog near the old mill by the "
                                          "river and", "endings": ["a", "b"], "label": 0}) + "\n")
    return path, {"base0": base[0], "base1": base[1], **special}


def curate(path: Path, tmp_path: Path, *extra: str) -> tuple[RunDir, dict]:
    cfg = load_config(None, [f"curate.input={path}", f"run.runs_dir={tmp_path / 'runs'}",
                             f"curate.filters.decontaminate.files=[{tmp_path}/eval/*.jsonl]",
                             "curate.filters.length.min_response_chars=5", *extra])
    run = RunDir(cfg.run_dir())
    manifest, _ = execute(STAGES["curate"], cfg, run, force=True)
    return run, manifest.counts


def removed_by(run: RunDir) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run.root / "curate" / "removed.jsonl").read_text().splitlines()]
    return {row.get("id", f"line{row['removed'].get('line')}"): row["removed"] for row in rows}


def test_planted_problems_are_removed_for_the_right_reason(planted, tmp_path: Path) -> None:
    path, rec = planted
    run, counts = curate(path, tmp_path)
    removed = removed_by(run)
    expected = {"exact": "exact_duplicate", "near": "near_duplicate", "paraphrase": "semantic_duplicate",
                "breezy": "refusal", "jazzy": "refusal", "contaminated": "contaminated", "truncated": "truncated",
                "short": "length", "user_last": "malformed", "empty": "malformed"}
    assert {name: removed[rec[name].id]["rule"] for name in expected} == expected
    assert removed[rec["exact"].id]["duplicate_of"] == rec["base0"].id
    assert removed[rec["near"].id]["duplicate_of"] == rec["base1"].id
    assert removed[rec["paraphrase"].id]["duplicate_of"] == rec["capital"].id
    assert removed[rec["contaminated"].id]["detail"].startswith("shares a 13-gram with mini.jsonl")
    assert removed[rec["user_last"].id]["detail"] == "the last turn is not the assistant's"
    kept = list(read_records(run.root / "curate" / "pairs.jsonl"))
    assert len(kept) == 21 and len(removed) == 10  # 20 topics + the first capital question
    assert counts["input"] == counts["kept"] + counts["removed"] == 31
    report = json.loads((run.root / "curate" / "report.json").read_text())
    assert report["by_rule"]["refusal"]["count"] == 2 and report["by_rule"]["malformed"]["count"] == 2
    assert report["by_source"]["other"] == {"input": 1, "kept": 0, "removed": {"exact_duplicate": 1}}
    assert (run.root / "curate" / "lengths.png").stat().st_size > 10_000
    assert "| refusal | 2 | 6.5% |" in (run.root / "curate" / "report.md").read_text()


def test_breezy_only_keeps_plain_refusals(planted, tmp_path: Path) -> None:
    path, rec = planted
    run, _ = curate(path, tmp_path, "curate.filters.refusal.phrase_sets=[breezy]", "curate.map.enabled=false",
                    "curate.semantic.enabled=false")
    removed = removed_by(run)
    assert removed[rec["breezy"].id]["rule"] == "refusal" and rec["jazzy"].id not in removed
    run, _ = curate(path, tmp_path, "curate.filters.refusal.phrase_sets=[]", "curate.filters.refusal.phrases=[do not have a sense]",
                    "curate.map.enabled=false", "curate.semantic.enabled=false")
    assert removed_by(run)[rec["breezy"].id]["detail"] == "phrase 'do not have a sense'"


def test_compare_prompt_only_finds_prompt_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    write_records(path, [pair("Same question here?", "first answer"), pair("same question  here?", "other answer")])
    run, _ = curate(path, tmp_path, "curate.compare=prompt", "curate.map.enabled=false", "curate.semantic.enabled=false",
                    "curate.filters.decontaminate.enabled=false")
    assert [r["rule"] for r in removed_by(run).values()] == ["exact_duplicate"]
    run, _ = curate(path, tmp_path, "curate.compare=response", "curate.map.enabled=false",
                    "curate.semantic.enabled=false", "curate.filters.decontaminate.enabled=false")
    assert removed_by(run) == {}


def test_corrupt_line_stops_or_is_kept_as_malformed(planted, tmp_path: Path) -> None:
    path, _ = planted
    lines = path.read_text().splitlines()
    lines.insert(3, '{"id": "x", "messages": [')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadRowError, match=rf"{path}:4: not valid JSON"):
        curate(path, tmp_path, "curate.map.enabled=false", "curate.semantic.enabled=false")
    run, counts = curate(path, tmp_path, "curate.skip_bad=true", "curate.map.enabled=false",
                         "curate.semantic.enabled=false")
    assert removed_by(run)["line4"]["rule"] == "malformed"
    assert counts["input"] == 32 == counts["kept"] + counts["removed"]
    # both files in input order (the unreadable row where it stood), and nothing of the run's spool left
    order = {json.loads(line)["id"]: number for number, line in enumerate(lines) if number != 3}
    for name in ("pairs.jsonl", "removed.jsonl"):
        rows = [json.loads(line) for line in (run.root / "curate" / name).read_text().splitlines()]
        numbers = [order[row["id"]] if "id" in row else row["removed"]["line"] - 1 for row in rows]
        assert numbers == sorted(numbers)
    assert sorted(p.name for p in (run.root / "curate").glob(".*")) == []


def test_pairs_without_ids_or_in_another_shape_curate_to_the_same_survivors(planted, tmp_path: Path) -> None:
    path, _ = planted
    switches = ["curate.map.enabled=false", "curate.semantic.enabled=false"]
    with_ids, _ = curate(path, tmp_path, *switches, "run.name=a")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "id"}) + "\n" for row in rows))
    without_ids, _ = curate(bare, tmp_path, *switches, "run.name=b")
    kept = list(read_records(with_ids.root / "curate" / "pairs.jsonl"))
    assert list(read_records(without_ids.root / "curate" / "pairs.jsonl")) == kept and len(kept) == 22

    # The same pairs as a user's Alpaca file (no ids, no sources, no meta): the same prompts survive.
    two_turn = [r for r in rows if len(r["messages"]) == 2 and r["meta"].get("finish_reason") == "stop"]
    alpaca = tmp_path / "my_pairs.jsonl"
    alpaca.write_text("".join(json.dumps({"instruction": r["messages"][0]["content"], "input": "",
                                          "output": r["messages"][1]["content"]}) + "\n" for r in two_turn))
    mine, counts = curate(alpaca, tmp_path, *switches, "run.name=c", "curate.filters.truncated.enabled=false")
    survivors = list(read_records(mine.root / "curate" / "pairs.jsonl"))
    assert {r.source for r in survivors} == {"my_pairs"} and counts["input"] == len(two_turn)
    assert [r.prompt for r in survivors] == [r.prompt for r in kept]


def test_map_html_holds_every_point_and_recolors_by_loss(planted, tmp_path: Path) -> None:
    path, rec = planted
    run, _ = curate(path, tmp_path)
    page = (run.root / "curate" / "map.html").read_text()
    point = "\\u003cb\\u003eprompt:"  # each point's hover text, as plotly escapes it in the page
    assert page.count(point) == 3 * 31  # every record, in each of the source/rule/cluster colorings
    assert "color by rule" in page and "Explain volcanoes to a curious teenager." in page
    assert "cdn.plot.ly" not in page.split("<script", 2)[1][:200]  # plotly.js is inlined, nothing fetched
    kept = list(read_records(run.root / "curate" / "pairs.jsonl"))
    (run.root / "train").mkdir()
    (run.root / "train" / "losses.jsonl").write_text("".join(json.dumps({"id": r.id, "loss": i / 10}) + "\n"
                                                             for i, r in enumerate(kept)))
    page = recolor(run.root).read_text()
    assert "color by loss" in page and page.count(point) == 3 * 31 + len(kept)


def test_map_screenshot_in_headless_chromium_shows_the_points(planted, tmp_path: Path, chromium: str) -> None:
    from PIL import Image

    path, _ = planted
    run, _ = curate(path, tmp_path)
    shot = tmp_path / "map.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1100,800", "--virtual-time-budget=5000",
                    f"--screenshot={shot}", (run.root / "curate" / "map.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    # Plotly's first two trace colors (#636efa, #EF553B): one per source ("synthetic", "other").
    marks = sum(1 for pixel in image.get_flattened_data() if pixel in ((99, 110, 250), (239, 85, 59)))
    assert marks > 31 * 10  # every marker paints dozens of pixels
