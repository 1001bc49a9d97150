"""Registry entries and checksum-verified, resumable downloads from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runtime.registry import BUNDLED_NAME, ModelEntry, Registry, RegistryError, download
from tests.runtime.conftest import PAYLOAD, FileServer


def entry(server: FileServer, sha: str | None = None) -> ModelEntry:
    return ModelEntry(name="tiny", filename="tiny.gguf", url=f"http://127.0.0.1:{server.server_port}/tiny.gguf",
                      sha256=sha or hashlib.sha256(PAYLOAD).hexdigest(), filesize=len(PAYLOAD))


def test_bundled_default_needs_no_download() -> None:
    registry = Registry.default()
    name, path = registry.resolve(None)
    assert name == BUNDLED_NAME and path.is_file() and path.suffix == ".gguf"
    assert registry.get(BUNDLED_NAME).installed


def test_models_json_from_home_and_runs(isolated_state: Path) -> None:
    (isolated_state / "models.json").write_text(json.dumps([{
        "name": "mine", "filename": "mine.gguf", "sha256": "0" * 64, "filesize": 3, "ramrequired": 1,
        "parameters": "7 billion", "quant": "q4_0", "type": "LLaMA", "chatTemplate": "{{ x }}",
        "systemMessage": "", "url": "http://127.0.0.1:1/mine.gguf"}]))
    quantized = isolated_state / "runs" / "tiny" / "quantize"
    quantized.mkdir(parents=True)
    (quantized / "tiny-q4_0.gguf").write_bytes(b"GGUF")
    (quantized / "models.json").write_text(json.dumps([{"name": "tiny-q4_0", "filename": "tiny-q4_0.gguf"}]))
    registry = Registry.default()
    assert registry.names() == [BUNDLED_NAME, "mine", "tiny-q4_0"]
    assert not registry.get("mine").installed
    assert registry.get("mine").path == isolated_state / "models" / "mine.gguf"
    assert registry.resolve("tiny-q4_0") == ("tiny-q4_0", quantized / "tiny-q4_0.gguf")
    with pytest.raises(RegistryError, match="'mine' is not installed"):
        registry.resolve("mine")


def test_bad_models_json_names_file_and_entry(isolated_state: Path) -> None:
    (isolated_state / "models.json").write_text(json.dumps([{"name": "ok", "filename": "a"}, {"name": "no file"}]))
    with pytest.raises(RegistryError, match=r"models\.json: entry 1: missing or invalid filename"):
        Registry.default()


def test_download_installs_a_verified_file(file_server: FileServer, tmp_path: Path) -> None:
    path = download(entry(file_server), tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "tiny.gguf.part").exists()
    assert file_server.ranges == [None]


def test_interrupted_download_resumes_from_part(file_server: FileServer, tmp_path: Path) -> None:
    file_server.cut_after = 300_000
    with pytest.raises(RegistryError, match="interrupted after 300000 bytes.*run it again to resume"):
        download(entry(file_server), tmp_path)
    assert (tmp_path / "tiny.gguf.part").stat().st_size == 300_000
    assert not (tmp_path / "tiny.gguf").exists()
    path = download(entry(file_server), tmp_path)
    assert file_server.ranges == [None, "bytes=300000-"]
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_is_an_error_and_nothing_is_installed(file_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="is corrupt \\(sha256 .*, expected 0000.*discarded"):
        download(entry(file_server, sha="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_registry_download_on_resolve(file_server: FileServer, isolated_state: Path) -> None:
    model = entry(file_server)
    (isolated_state / "models.json").write_text(json.dumps([model.to_json()]))
    registry = Registry.default()
    name, path = registry.resolve("tiny", allow_download=True)
    assert (name, path) == ("tiny", isolated_state / "models" / "tiny.gguf")
    assert registry.get("tiny").installed


def test_catalogue_entries_read_as_models3_json_writes_them() -> None:
    item = {"order": "a", "name": "m", "filename": "m.gguf", "filesize": "98362432", "ramrequired": "0.5",
            "sha256sum": "ab" * 32, "systemMessage": "Be brief.", "requires": "2.8.0", "url": None}
    entry = ModelEntry.from_json(item)
    assert (entry.filesize, entry.ramrequired, entry.sha256, entry.systemPrompt) == (98362432, 0.5, "ab" * 32,
                                                                                     "Be brief.")
    assert entry.to_json() == {"order": "a", "requires": "2.8.0", "name": "m", "filename": "m.gguf",
                               "sha256": "ab" * 32, "filesize": 98362432, "ramrequired": 0.5,
                               "systemPrompt": "Be brief."}
    assert ModelEntry.from_json(entry.to_json()) == entry
    with pytest.raises(ValueError, match="^filename, filesize, url$"):
        ModelEntry.from_json({"name": "m", "filesize": "big", "url": 3})
