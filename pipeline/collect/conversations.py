"""Requests through the cache and the teacher: one answer (`ask`), one prompt's conversation (`converse`),
and a pool of workers that runs many of them at once and keeps their order (`in_order`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tqdm import tqdm

from pipeline.collect.cache import AnswerCache, request_key
from pipeline.collect.sources import Prompt
from pipeline.collect.teacher import Answer, Teacher, TeacherFailure
from pipeline.config import CollectConfig
from pipeline.records import Record

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class Tally:
    """Token and request accounting for one run."""

    sent_prompt_tokens: int = 0
    sent_completion_tokens: int = 0
    cached: int = 0
    sent: int = 0


@dataclass
class Failure:
    prompt: Prompt
    reason: str


class Conversations:
    """Turns prompts into conversations through the cache and the teacher."""

    def __init__(self, cfg: CollectConfig, teacher: Teacher, cache: AnswerCache) -> None:
        self.cfg, self.teacher, self.cache = cfg, teacher, cache
        self.tally = Tally()

    def system(self) -> list[dict[str, str]]:
        """The configured system message, if any, to open a request with."""
        prompt = self.cfg.teacher.system_prompt
        return [{"role": "system", "content": prompt}] if prompt else []

    async def ask(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> Answer:
        request = self.teacher.request(messages, max_tokens)
        key = request_key(request)
        if (hit := self.cache.answered(key)) is not None:
            self.tally.cached += 1
            return Answer(**hit)
        try:
            answer = await self.teacher.send(request)
        except TeacherFailure as exc:
            self.cache.put_failure(key, request, str(exc))
            raise
        self.cache.put_answer(key, request, answer.__dict__)
        self.tally.sent += 1
        self.tally.sent_prompt_tokens += answer.prompt_tokens
        self.tally.sent_completion_tokens += answer.completion_tokens
        return answer

    async def converse(self, prompt: Prompt) -> Record:
        turns = [{"role": "user", "content": prompt.text}]
        used = {"prompt_tokens": 0, "completion_tokens": 0}
        answer = None
        for turn in range(self.cfg.followup_turns + 1):
            if turn:
                transcript = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in turns)
                question = await self.ask([{"role": "system", "content": self.cfg.followup_instruction},
                                           {"role": "user", "content": transcript}], max_tokens=96)
                turns.append({"role": "user", "content": question.text.strip()})
            answer = await self.ask(self.system() + turns)
            turns.append({"role": "assistant", "content": answer.text})
            used["prompt_tokens"] += answer.prompt_tokens
            used["completion_tokens"] += answer.completion_tokens
        assert answer is not None
        meta = {"teacher": self.cfg.teacher.model, **used, "finish_reason": answer.finish_reason}
        return Record.create(prompt.source, turns, meta)

    async def record_or_failure(self, prompt: Prompt) -> Record | Failure:
        try:
            return await self.converse(prompt)
        except TeacherFailure as exc:
            return Failure(prompt, str(exc))


async def in_order(items: Sequence[Item], work: Callable[[Item], Awaitable[Result]], workers: int,
                   bar: tqdm) -> list[Result]:
    """`work` on every item by `workers` concurrent tasks; the results keep the items' order."""
    results: list[Result | None] = [None] * len(items)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(items)):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            results[index] = await work(items[index])
            bar.update(1)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results  # type: ignore[return-value]  # every slot is filled
