"""OpenAI wire format: request bodies we accept and the response/chunk/error bodies we send."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runtime.model import SamplingParams

DEFAULTS = SamplingParams()


class ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """A message; `developer` is OpenAI's newer name for `system`. An assistant message may carry
    tool_calls with null content (clients replay them); their text is whatever content there is."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @model_validator(mode="after")
    def has_content(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def as_dict(self) -> dict[str, str]:
        return {"role": "system" if self.role == "developer" else self.role, "content": self.text()}


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    def grammar(self) -> str | None:
        """The GBNF grammar llama.cpp samples under: any JSON object, or JSON of the given schema."""
        from llama_cpp import llama_grammar

        if self.type == "text":
            return None
        if self.type == "json_object":
            return llama_grammar.JSON_GBNF
        schema = (self.json_schema or {}).get("schema")
        if not isinstance(schema, dict):
            raise ValueError("response_format.json_schema.schema: a JSON schema object is required")
        try:
            return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        except Exception as exc:  # the converter raises plain exceptions on schemas it cannot express
            raise ValueError(f"response_format.json_schema.schema: not supported ({exc})") from None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False


# OpenAI fields this server does not implement: a request that sets them gets a 400 naming the field,
# never a 200 that silently ignored them.
UNSUPPORTED = {"tools": "tool calling", "tool_choice": "tool calling", "functions": "function calling",
               "function_call": "function calling", "echo": "echo", "best_of": "best_of", "suffix": "suffix", "logit_bias": "logit_bias"}
MAX_STOPS = 4  # OpenAI's limit


class GenerationRequest(BaseModel):
    """Fields shared by both endpoints, with OpenAI's ranges; numbers must be numbers (strict). Unknown
    fields are ignored; known ones we cannot honour are refused (UNSUPPORTED)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(DEFAULTS.temp, ge=0, le=2)
    top_p: float = Field(DEFAULTS.top_p, gt=0, le=1)
    top_k: int = Field(DEFAULTS.top_k, ge=0, le=100_000)
    min_p: float = Field(DEFAULTS.min_p, ge=0, le=1)
    repeat_penalty: float = Field(DEFAULTS.repeat_penalty, gt=0, le=10)
    repeat_last_n: int = Field(DEFAULTS.repeat_last_n, ge=0, le=1_000_000)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    seed: int | None = Field(None, ge=0, lt=2**32 - 1)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported.")
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None

    @model_validator(mode="after")
    def supported(self) -> GenerationRequest:
        for name, what in UNSUPPORTED.items():
            value = (self.model_extra or {}).get(name)
            if value not in (None, False, [], {}, 0) and not (name == "tool_choice" and value == "none"):
                raise ValueError(f"{name}: {what} is not supported by this server")
        if len(self.stops()) > MAX_STOPS:
            raise ValueError(f"stop: at most {MAX_STOPS} sequences")
        return self

    def stops(self) -> list[str]:
        """`stop` as a list, as sent."""
        return self.stop if isinstance(self.stop, list) else [self.stop] if self.stop is not None else []

    def stop_list(self) -> list[str]:
        """The stop sequences; empty strings are dropped (one would end every answer before it starts)."""
        return [s for s in self.stops() if s]

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
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            seed=self.seed,
            grammar=self.response_format.grammar() if self.response_format else None,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatRequest(GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    localdocs: list[str] = Field([], max_length=16, description="LocalDocs collections (ones the server "
                                 "publishes, `serve --docs`) to answer from; the answer's `sources` cite them.")

    @model_validator(mode="after")
    def logprobs_asked(self) -> ChatRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs: needs logprobs: true")
        if self.logprobs and self.stream:
            raise ValueError("logprobs: not supported with stream: true (ask for one body)")
        if self.localdocs and self.messages[-1].role != "user":
            raise ValueError("localdocs: the last message must be the user's question")
        return self

    def sampling(self, default_max_tokens: int, n_batch: int) -> SamplingParams:
        params = super().sampling(default_max_tokens, n_batch)
        if self.max_completion_tokens and not self.max_tokens:
            params.max_tokens = self.max_completion_tokens
        params.logprobs = (self.top_logprobs or 0) if self.logprobs else None
        return params


class CompletionRequest(GenerationRequest):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=5, description="Alternatives per token (OpenAI: at most 5).")

    @model_validator(mode="after")
    def logprobs_asked(self) -> CompletionRequest:
        if self.logprobs is not None and self.stream:
            raise ValueError("logprobs: not supported with stream: true (ask for one body)")
        return self

    def sampling(self, default_max_tokens: int, n_batch: int) -> SamplingParams:
        params = super().sampling(default_max_tokens, n_batch)
        params.logprobs = self.logprobs
        return params

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


Piece = tuple[str, float, list[tuple[str, float]]]  # a token's text, log-probability, alternatives


def chat_logprobs(pieces: list[Piece]) -> dict[str, Any]:
    def entry(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {"content": [{**entry(text, lp), "top_logprobs": [entry(t, p) for t, p in top]} for text, lp, top in pieces]}


def completion_logprobs(pieces: list[Piece]) -> dict[str, Any]:
    offsets, at = [], 0
    for text, _, _ in pieces:
        offsets.append(at)
        at += len(text)
    return {"tokens": [text for text, _, _ in pieces], "token_logprobs": [lp for _, lp, _ in pieces],
            "top_logprobs": [dict(top) for _, _, top in pieces], "text_offset": offsets}


def chat_choice(text: str | None, finish_reason: str | None, delta: bool) -> dict[str, Any]:
    if delta:
        content = {} if text is None else {"role": "assistant", "content": text}
        return {"index": 0, "delta": content, "finish_reason": finish_reason}
    return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}


def completion_choice(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}


def envelope(response_id: str, kind: str, model: str, choice: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": response_id, "object": kind, "created": int(time.time()), "model": model, "choices": [choice], **extra}
