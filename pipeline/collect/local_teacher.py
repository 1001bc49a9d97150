"""The embedded default's teacher: this project's runtime server on a bundled GGUF, on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from runtime.server import DEFAULT_HOST, free_port


@contextmanager
def local_teacher(model: str, log_path: Path, threads: int | None = None, startup_s: float = 120.0) -> Iterator[str]:
    """Start `python -m runtime serve MODEL` and yield its /v1 base URL; stop it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "runtime", "serve", model, "--host", DEFAULT_HOST, "--port", str(port)]
    if threads:
        command += ["--threads", str(threads)]
    url = f"http://{DEFAULT_HOST}:{port}/v1"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the local teacher exited at start:\n{log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the local teacher did not answer within {startup_s:.0f} s; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
