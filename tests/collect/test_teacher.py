import asyncio
import time

import pytest

from pipeline.collect.teacher import Teacher
from pipeline.config import TeacherConfig
from tests.fake_openai import FakeOpenAI


async def send_all(cfg: TeacherConfig, url: str, n: int) -> float:
    teacher = Teacher(cfg, url)
    start = time.perf_counter()
    await asyncio.gather(*(teacher.send(teacher.request([{"role": "user", "content": f"q{i}"}])) for i in range(n)))
    await teacher.close()
    return time.perf_counter() - start


@pytest.mark.parametrize(("limits", "n", "low", "high"), [
    # 6,000 tokens/min = 100/s; each request is estimated at ~101 tokens (prompt + max_tokens=100):
    # two fit the bucket at once, then one per second.
    ({"tokens_per_minute": 6000, "max_tokens": 100}, 4, 1.8, 6),
    # 120 requests/min = 2/s with a bucket of 2: six requests need about two seconds.
    ({"requests_per_minute": 120}, 6, 1.7, 5),
], ids=["tokens_per_minute", "requests_per_minute"])
def test_rate_limits_pace_requests(limits: dict[str, float], n: int, low: float, high: float) -> None:
    cfg = TeacherConfig(model="m", max_concurrency=8, **limits)
    with FakeOpenAI() as server:
        elapsed = asyncio.run(send_all(cfg, server.url, n))
    assert low < elapsed < high
