"""Shared fixtures: user state in temp folders, the bundled model, a real server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.server import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the user's ~/.cache or the project's runs/."""
    home = tmp_path_factory.mktemp("runtime-home")
    monkeypatch.setenv("RUNTIME_HOME", str(home))
    monkeypatch.setenv("RUNTIME_RUNS_DIR", str(home / "runs"))
    return home


@pytest.fixture(scope="session")
def model():  # noqa: ANN201 - GPT4All
    """The bundled SmolLM2-135M-Instruct, loaded once."""
    from runtime.model import GPT4All

    return GPT4All(n_threads=2)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m runtime serve` in a child process on a free loopback port."""
    port = free_port()
    home = tmp_path_factory.mktemp("server-home")
    env = {**os.environ, "RUNTIME_HOME": str(home), "RUNTIME_RUNS_DIR": str(home / "runs")}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--port", str(port), "--threads", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text()}")
    else:
        proc.kill()
        raise RuntimeError("server did not start in 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
