"""OpenAI wire format: request bodies we accept and the response/chunk/error bodies we send."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.model import SamplingParams

DEFAULTS = SamplingParams()


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class GenerationRequest(BaseModel):
    """Fields shared by both endpoints; unknown OpenAI fields are ignored, wrong types are 400s."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(DEFAULTS.temp, ge=0, le=2)
    top_p: float = Field(DEFAULTS.top_p, gt=0, le=1)
    top_k: int = Field(DEFAULTS.top_k, ge=0)
    min_p: float = Field(DEFAULTS.min_p, ge=0, le=1)
    repeat_penalty: float = Field(DEFAULTS.repeat_penalty, gt=0)
    repeat_last_n: int = Field(DEFAULTS.repeat_last_n, ge=0)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    stop: str | list[str] | None = None
    stream: bool = False

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    def sampling(self, default_max_tokens: int, n_batch: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_tokens or default_max_tokens,
            temp=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            repeat_last_n=self.repeat_last_n,
            n_batch=n_batch,
        )


class ChatRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    def sampling(self, default_max_tokens: int, n_batch: int) -> SamplingParams:
        params = super().sampling(default_max_tokens, n_batch)
        if self.max_completion_tokens and not self.max_tokens:
            params.max_tokens = self.max_completion_tokens
        return params


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_choice(text: str | None, finish_reason: str | None, delta: bool) -> dict[str, Any]:
    if delta:
        content = {} if text is None else {"role": "assistant", "content": text}
        return {"index": 0, "delta": content, "finish_reason": finish_reason}
    return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}


def completion_choice(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}


def envelope(response_id: str, kind: str, model: str, choice: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": response_id, "object": kind, "created": int(time.time()), "model": model, "choices": [choice], **extra}
