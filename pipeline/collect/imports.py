"""Import sources: existing pairs (a local file or a dataset) become records with no teacher call.

GPT4All's models were trained on the pairs Nomic released (gpt4all_prompt_generations,
gpt4all-j-prompt-generations @ v1.3-groovy); gpt-3.5-turbo, the teacher that wrote them, is retired, so
reproduction starts here rather than from a new collection.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pipeline.collect.sources import SourceError, expand
from pipeline.config import ImportSource
from pipeline.pairs import rows_to_records
from pipeline.records import Record
from pipeline.rowfiles import Row, iter_rows
from pipeline.shapes import PairReader


@dataclass
class ImportTally:
    """Rows imported and bad rows skipped, per source name."""

    imported: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def dataset_rows(src: ImportSource, data_dir: Path) -> Iterator[Row]:
    """Rows of a hub dataset (at its revision), a local hub-layout folder or a save_to_disk folder."""
    import datasets

    assert src.dataset is not None
    target = expand(src.dataset, data_dir)
    label = f"{src.dataset}" + (f"@{src.revision}" if src.revision else "") + f"[{src.split}]"
    try:
        if is_saved_dataset(Path(target)):
            rows = datasets.load_from_disk(target)
            if isinstance(rows, datasets.DatasetDict):
                rows = rows[src.split]
        else:
            files = [expand(f, data_dir) for f in src.data_files] if src.data_files else None
            rows = datasets.load_dataset(target, src.subset, split=src.split, revision=src.revision,
                                         data_files=files, streaming=src.streaming)
    except Exception as exc:  # datasets raises many types; all mean "cannot load this source"
        raise SourceError(f"import {src.name!r}: cannot load dataset {label}: {exc}") from None
    for number, row in enumerate(rows, start=1):
        yield Row(f"{label} row {number}", number, row)


def source_rows(src: ImportSource, data_dir: Path) -> Iterator[Row]:
    if src.path is not None:
        path = Path(expand(src.path, data_dir))
        if not path.is_file():
            raise SourceError(f"import {src.name!r}: file not found: {path}")
        return iter_rows(path)
    return dataset_rows(src, data_dir)


def import_records(src: ImportSource, data_dir: Path, bad_log: IO[str] | None = None,
                   tally: ImportTally | None = None) -> Iterator[Record]:
    """The source's records, at most `limit`; bad rows raise, or with skip_bad are counted and logged."""
    tally = tally or ImportTally()
    tally.imported.setdefault(src.name, 0)
    tally.bad.setdefault(src.name, 0)

    def skip(row: Row, reason: str) -> None:
        tally.bad[src.name] += 1
        if bad_log is not None:
            bad_log.write(json.dumps({"source": src.name, "where": row.where, "reason": reason}) + "\n")

    try:
        reader = PairReader(src.name, src.format, src.fields or None, src.source_field)
    except ValueError as exc:
        raise SourceError(f"import {src.name!r}: {exc}") from None
    records = rows_to_records(source_rows(src, data_dir), reader, skip if src.skip_bad else None)
    for record in itertools.islice(records, src.limit):
        tally.imported[src.name] += 1
        yield record


def local_inputs(src: ImportSource, data_dir: Path) -> list[Path]:
    """Local files an import reads (hashed into the manifest); hub datasets are named by the config."""
    if src.path is not None:
        return [Path(expand(src.path, data_dir))]
    if src.data_files:
        return [Path(expand(f, data_dir)) for f in src.data_files]
    return []


def describe(src: ImportSource, data_dir: Path) -> str:
    """One plan line: where the pairs come from and how many there are, without the network.

    Local files are counted; a hub dataset reports the row count its card states (`rows`).
    """
    origin = src.path or f"{src.dataset}" + (f" @ {src.revision}" if src.revision else "") + f" [{src.split}]"
    local = local_inputs(src, data_dir)
    saved = src.dataset is not None and is_saved_dataset(Path(expand(src.dataset, data_dir)))
    if (local and all(p.is_file() for p in local)) or saved:
        rows = chars = 0
        for record in import_records(src.model_copy(update={"skip_bad": True}), data_dir):
            rows += 1
            chars += sum(len(m.content) for m in record.messages)
        return f"import {src.name}: {origin}: {rows:,} rows, ~{chars // 4:,} tokens (characters / 4)"
    if src.rows:
        count = min(src.rows, src.limit) if src.limit else src.rows
        return f"import {src.name}: {origin}: {count:,} rows (dataset card; not read here)"
    return f"import {src.name}: {origin}: row count unknown here (set `rows` from the dataset card)"
