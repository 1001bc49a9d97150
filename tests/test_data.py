"""The repository's data/: every file listed in MANIFEST.tsv with its size and sha256, and documented."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"


def manifest() -> list[dict[str, str]]:
    with (DATA / "MANIFEST.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_every_data_file_matches_the_manifest() -> None:
    rows = manifest()
    listed = {row["path"] for row in rows}
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()} - {"MANIFEST.tsv", "README.md"}
    assert listed == on_disk
    for row in rows:
        blob = (DATA / row["path"]).read_bytes()
        assert len(blob) == int(row["bytes"]), row["path"]
        assert hashlib.sha256(blob).hexdigest() == row["sha256"], row["path"]


def test_every_data_file_has_an_origin_and_a_license_in_the_readme() -> None:
    readme = (DATA / "README.md").read_text()
    for row in manifest():
        documented = "eval/llmfoundry_format/" if row["path"].startswith("eval/llmfoundry_format/") else row["path"]
        assert f"`{documented}" in readme, row["path"]
    licensed_rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert licensed_rows and all(line.rstrip(" |").rsplit("|", 1)[-1].strip() for line in licensed_rows)
