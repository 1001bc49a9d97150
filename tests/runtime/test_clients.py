"""Real OpenAI-protocol clients against the server on 127.0.0.1: LangChain's ChatOpenAI and litellm (the
official openai client drives tests/runtime/test_server.py): chat, stream, JSON mode, usage."""

from __future__ import annotations

import json
import os

import pytest

MODEL = "SmolLM2-135M-Instruct"
QUESTION = "What is the capital of France?"
CITY = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
        "additionalProperties": False}


@pytest.fixture(scope="module")
def litellm(server_url: str):  # noqa: ANN201 - the litellm module
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # its model price list from the package, not GitHub
    import litellm

    return litellm


def test_langchain_chat_stream_json_and_usage(server_url: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server_url}/v1", api_key="unused", model=MODEL, max_tokens=12, temperature=0,
                     max_retries=0, stream_usage=True)
    reply = llm.invoke(QUESTION)
    assert reply.content and reply.usage_metadata["output_tokens"] <= 12
    assert reply.usage_metadata["total_tokens"] == reply.usage_metadata["input_tokens"] + reply.usage_metadata[
        "output_tokens"]
    chunks = list(llm.stream(QUESTION))
    assert "".join(c.content for c in chunks) == reply.content
    assert sum(c.usage_metadata["output_tokens"] for c in chunks if c.usage_metadata) == reply.usage_metadata[
        "output_tokens"]  # stream_usage: the server's include_usage chunk
    city = llm.bind(response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}},
                    max_tokens=40).invoke("Name a city as JSON.")
    assert isinstance(json.loads(city.content)["city"], str)


def test_litellm_chat_stream_json_and_usage(server_url: str, litellm) -> None:  # noqa: ANN001
    kwargs = {"model": f"openai/{MODEL}", "api_base": f"{server_url}/v1", "api_key": "unused",
              "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12, "temperature": 0}
    reply = litellm.completion(**kwargs)
    assert reply.choices[0].message.content and 0 < reply.usage.completion_tokens <= 12
    chunks = list(litellm.completion(stream=True, **kwargs))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    structured = litellm.completion(**{**kwargs, "max_tokens": 40}, response_format={
        "type": "json_schema", "json_schema": {"name": "city", "schema": CITY}})
    assert isinstance(json.loads(structured.choices[0].message.content)["city"], str)
