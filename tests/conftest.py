"""Shared fixtures: user state in temp folders, the bundled model, a real server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.server import free_port

ROOT = Path(__file__).resolve().parents[1]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a failed promise: the suite fails if any test skipped (install what it needs)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; the suite allows none", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, which .ci/run installs (`apt-get install chromium`)."""
    path = shutil.which("chromium")
    assert path, "Debian chromium is not installed: apt-get install chromium (.ci/run does)"
    return path


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HF folders made from GGUFs, shared by every test of the session (the 135M one takes ~45 s)."""
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="session")
def gemma3_hf(hf_cache: Path) -> Path:
    """The base Gemma 3 270M as an HF folder (what `bundled:gemma-3-270m` resolves to; ~80 s to dequantize)."""
    from pipeline.hf_models import gemma3_270m_gguf, gguf_to_hf

    return gguf_to_hf(gemma3_270m_gguf(), hf_cache / "gemma-3-270m")


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, hf_cache: Path) -> Path:
    """No test reads or writes the user's ~/.cache or the project's runs/."""
    home = tmp_path_factory.mktemp("runtime-home")
    (home / "hf").symlink_to(hf_cache)
    monkeypatch.setenv("RUNTIME_HOME", str(home))
    monkeypatch.setenv("RUNTIME_RUNS_DIR", str(home / "runs"))
    monkeypatch.setenv("GPT4ALL_MODEL_DIR", str(home / "models"))
    monkeypatch.delenv("GPT4ALL_MODELS_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def bundled_hf(hf_cache: Path) -> Path:
    """The bundled SmolLM2-135M-Instruct as an HF folder (what `bundled:SmolLM2-135M-Instruct` resolves to)."""
    from pipeline.hf_models import gguf_to_hf
    from runtime.registry import BUNDLED_NAME, bundled_entry

    entry = bundled_entry()
    assert entry is not None and entry.path is not None
    return gguf_to_hf(entry.path, hf_cache / BUNDLED_NAME)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, bundled_hf: Path) -> Path:
    """A 2-layer random LlamaForCausalLM with the SmolLM2 tokenizer, saved as an HF folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(bundled_hf).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def model():  # noqa: ANN201 - GPT4All
    """The bundled SmolLM2-135M-Instruct, loaded once."""
    from runtime.model import GPT4All

    return GPT4All(n_threads=2)


def start_server(home: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`python -m runtime serve ARGS` in a child process on a free loopback port, once it answers."""
    port = free_port()
    env = {**os.environ, "RUNTIME_HOME": str(home), "RUNTIME_RUNS_DIR": str(home / "runs"),
           "GPT4ALL_MODEL_DIR": str(home / "models")}
    env.pop("RUNTIME_API_KEY", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--port", str(port), "--threads", "2", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text()}")
    proc.kill()
    raise RuntimeError("server did not start in 60 s")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m runtime serve` in a child process on a free loopback port, with room to queue 32 requests."""
    proc, url = start_server(tmp_path_factory.mktemp("server-home"), "--max-queue", "32")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
