"""The run directory: per-stage folders, manifests, skip-when-unchanged and atomic writes.

    runs/<name>/<stage>/...            the stage's outputs
    runs/<name>/<stage>/manifest.json  what produced them (config, input hashes, counts, versions)

A stage is skipped when its manifest says it finished with the same config hash and the same input
hashes. Outputs are written under temporary names and renamed at the end, so an interrupted stage never
leaves a file that looks finished.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pipeline.processes import is_main
from runtime.registry import file_digest

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig

TRACKED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "lm-eval", "llama-cpp-python", "gguf")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def open_text(path: Path) -> IO[str]:
    """A UTF-8 text file, gzip-compressed or not (by its .gz suffix)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, pretty-printed."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide a run's results."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_sha() -> str | None:
    """The commit of the code that ran, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


class Manifest(BaseModel):
    """What a finished stage records about itself."""

    stage: str
    config: dict[str, Any]
    config_hash: str
    inputs: dict[str, str] = Field(description="Input path -> sha256.")
    counts: dict[str, int | float] = Field(default_factory=dict)
    seed: int
    wall_time_s: float
    started: datetime
    finished: datetime
    versions: dict[str, str] = Field(default_factory=dict)
    git_sha: str | None = None


class RunDir:
    """One run's folder and its per-stage manifests."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def stage_dir(self, stage: str) -> Path:
        """The stage's folder, created on first use."""
        path = self.root / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def manifest_path(self, stage: str) -> Path:
        return self.root / stage / "manifest.json"

    def read_manifest(self, stage: str) -> Manifest | None:
        """The stage's manifest, or None if it never finished (or the file is unreadable)."""
        path = self.manifest_path(stage)
        if not path.is_file():
            return None
        try:
            return Manifest.model_validate_json(path.read_text())
        except ValueError:
            return None

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(self.manifest_path(manifest.stage), manifest.model_dump(mode="json"))

    def is_up_to_date(self, stage: str, config_hash: str, inputs: dict[str, str]) -> bool:
        """True when the stage finished before with this config and these exact inputs."""
        manifest = self.read_manifest(stage)
        return manifest is not None and manifest.config_hash == config_hash and manifest.inputs == inputs


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: reads files in the run directory, writes its own, returns its counts."""

    name: str
    run: Callable[[PipelineConfig, RunDir], dict[str, int | float]]
    inputs: Callable[[PipelineConfig, RunDir], list[Path]]
    plan: Callable[[PipelineConfig], str] | None = None  # what a run would do, for --dry-run


def hash_inputs(paths: list[Path]) -> dict[str, str]:
    """Input path -> sha256; a missing input is an error naming it."""
    hashes = {}
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"input not found: {path} (run the stage that makes it first)")
        hashes[str(path)] = file_digest(path)
    return hashes


def execute(stage: Stage, cfg: PipelineConfig, run: RunDir, force: bool = False) -> tuple[Manifest, bool]:
    """Run a stage unless it is up to date; return its manifest and whether it ran."""
    config_hash = cfg.section_hash(stage.name)
    inputs = hash_inputs(stage.inputs(cfg, run))
    if not force and run.is_up_to_date(stage.name, config_hash, inputs):
        manifest = run.read_manifest(stage.name)
        assert manifest is not None
        return manifest, False
    started, clock = datetime.now(UTC), time.perf_counter()
    counts = stage.run(cfg, run)
    manifest = Manifest(
        stage=stage.name,
        config=getattr(cfg, stage.name).model_dump(mode="json"),
        config_hash=config_hash,
        inputs=inputs,
        counts=counts,
        seed=cfg.run.seed,
        wall_time_s=round(time.perf_counter() - clock, 3),
        started=started,
        finished=datetime.now(UTC),
        versions=package_versions(),
        git_sha=git_sha(),
    )
    if is_main():  # the other ranks of a multi-process launch only help compute it
        run.write_manifest(manifest)
    return manifest, True
