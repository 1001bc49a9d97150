"""Which process of a multi-process launch this is, and tying a worker's life to its launcher.

`accelerate launch` and `torchrun` start one worker per rank and set RANK, WORLD_SIZE and LOCAL_RANK in
each worker's environment; a plain `python -m pipeline` has none of them and is rank 0 of 1. These helpers
read only the environment, so the CLI and the run directory can ask without importing torch.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0: the one process that writes logs, models and manifests."""
    return rank() == 0


def launched() -> bool:
    """True in a worker started by torchrun / accelerate launch (its launcher is the parent process)."""
    return "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ


def exit_with_launcher(poll_s: float = 0.2) -> None:
    """In a launched worker, kill this process as soon as its launcher is gone.

    A launcher killed with SIGKILL cannot stop its workers, and Linux re-parents them; a daemon thread
    notices the new parent and ends the worker, so no orphan keeps training into the run folder."""
    if not launched():
        return
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_s)
        print(f"rank {rank()}: the launcher (pid {launcher}) is gone; exiting", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="exit-with-launcher", daemon=True).start()
