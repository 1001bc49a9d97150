"""Ordered results of independent jobs, computed by forked worker processes ahead of the consumer."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def ordered_results(work: Callable[[Job], Result], jobs: Sequence[Job], workers: int) -> Iterator[Result]:
    """`work(job)` for each job, in order; in this process when one worker is asked for.

    fork: workers start in milliseconds with the parent's imports (spawn re-imports, ~1 s). Jobs should be
    small to pickle (a view of spooled texts, not the texts), and the parent must run no threads of its
    own when the pool starts (curate loads torch only after its dedupe steps)."""
    if workers == 1 or len(jobs) <= 1:
        yield from map(work, jobs)
        return
    with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(work, jobs)
