"""An async OpenAI-compatible teacher: bounded concurrency, request and token rate limits, retries.

Retried: 429 (waiting as long as Retry-After says), 5xx, timeouts and dropped connections, with
exponential backoff and jitter otherwise. A request that still fails raises TeacherFailure with the reason.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import openai
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from pipeline.config import TeacherConfig

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


class TeacherError(RuntimeError):
    """The teacher cannot be used at all (no key, unreachable, refused): stop before any work."""


class TeacherFailure(RuntimeError):
    """One request failed after every retry."""


@dataclass
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def api_key(cfg: TeacherConfig) -> str:
    """The key from the named environment variable; the key itself is never stored or printed."""
    if cfg.api_key_env is None:
        return "unused"
    value = os.environ.get(cfg.api_key_env)
    if not value:
        raise TeacherError(f"collect.teacher.api_key_env: environment variable {cfg.api_key_env} is not set")
    return value


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's Retry-After (seconds), when a 429 or 503 carries one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class WaitRetryAfter:
    """Wait what Retry-After asks for, else exponential backoff with jitter."""

    def __init__(self, max_wait_s: float = 60.0) -> None:
        self.backoff = wait_random_exponential(multiplier=0.5, max=max_wait_s)
        self.max_wait_s = max_wait_s

    def __call__(self, state: RetryCallState) -> float:
        asked = retry_after_seconds(state.outcome.exception() if state.outcome else None)
        return min(asked, self.max_wait_s) if asked is not None else self.backoff(state)


def describe(exc: BaseException) -> str:
    """A short reason for a failed request, never including credentials."""
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    return f"{kind} (HTTP {status})" if status else kind


class Teacher:
    """Sends chat requests to one OpenAI-compatible endpoint under the configured limits."""

    def __init__(self, cfg: TeacherConfig, base_url: str) -> None:
        self.cfg = cfg
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key(cfg), max_retries=0,
                                         timeout=cfg.timeout_s)
        self.slots = asyncio.Semaphore(cfg.max_concurrency)
        # The request bucket holds one second of budget, so a run never bursts past its per-minute limit.
        self.requests = AsyncLimiter(max(cfg.requests_per_minute / 60, 1), 1)
        self.tokens = None
        if cfg.tokens_per_minute:
            # Refills at tokens_per_minute / 60 per second; holds at least two full requests.
            per_second = cfg.tokens_per_minute / 60
            capacity = max(per_second, 2.0 * cfg.max_tokens)
            self.tokens = AsyncLimiter(capacity, capacity / per_second)
        self.sent = 0

    async def check(self) -> None:
        """Fail fast, before any work, when the endpoint is unreachable or refuses the key."""
        try:
            await self.client.models.list()
        except openai.AuthenticationError:
            raise TeacherError(f"teacher at {self.client.base_url} refused the API key from "
                               f"${self.cfg.api_key_env}") from None
        except (openai.APIConnectionError, openai.APITimeoutError):
            raise TeacherError(f"teacher endpoint {self.client.base_url} is unreachable") from None
        except openai.APIStatusError:
            pass  # some compatible servers have no /models; the first request will tell

    def request(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> dict[str, Any]:
        """The request body (also the cache key's source)."""
        return {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "top_p": self.cfg.top_p, "max_tokens": max_tokens or self.cfg.max_tokens}

    async def send(self, request: dict[str, Any]) -> Answer:
        """One chat completion, retried; raises TeacherFailure with the reason when it cannot succeed."""
        estimate = sum(len(m["content"]) for m in request["messages"]) // 4 + request["max_tokens"]
        retrying = AsyncRetrying(stop=stop_after_attempt(self.cfg.max_retries + 1), wait=WaitRetryAfter(),
                                 retry=retry_if_exception(is_retryable), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    async with self.slots:
                        await self.requests.acquire()
                        if self.tokens is not None:
                            await self.tokens.acquire(min(estimate, self.tokens.max_rate))
                        self.sent += 1
                        reply = await self.client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            raise TeacherFailure(f"{describe(exc)} after {tries} attempt(s)") from None
        choice = reply.choices[0]
        usage = reply.usage
        return Answer(choice.message.content or "", choice.finish_reason or "stop",
                      usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)

    async def close(self) -> None:
        await self.client.close()
