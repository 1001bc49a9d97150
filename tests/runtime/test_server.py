"""The OpenAI-compatible server in a child process, driven by the official `openai` client and raw HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def client(server_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="not-needed", max_retries=0, timeout=120)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert MODEL in [m.id for m in client.models.list()]


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ask("What is 2+2?"), max_tokens=20, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 20
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    kwargs = {"model": MODEL, "messages": ask("Name three fruits."), "max_tokens": 24, "temperature": 0}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 3
    assert text == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_completions_plain_streaming_and_stop(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=12, temperature=0)
    text = full.choices[0].text
    assert text and full.choices[0].finish_reason == "length"
    streamed = "".join(c.choices[0].text for c in
                       client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=12,
                                                 temperature=0, stream=True))
    assert streamed == text
    stop = text.strip().split()[1]  # a word that appears in the greedy answer
    cut = client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=12, temperature=0, stop=[stop])
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_concurrent_requests_are_all_answered(client: openai.OpenAI) -> None:
    def one(i: int) -> str:
        return client.chat.completions.create(model=MODEL, messages=ask(f"Say the number {i}."), max_tokens=8,
                                              temperature=0).choices[0].message.content

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(4)))
    assert all(answers)


def test_bad_requests_get_openai_errors(server_url: str, client: openai.OpenAI) -> None:
    url = f"{server_url}/v1/chat/completions"
    bad_json = httpx.post(url, content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in bad_json.json()["error"]["message"]

    missing = httpx.post(url, json={"model": MODEL})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"

    wrong = httpx.post(url, json={"model": MODEL, "messages": ask("hi"), "temperature": "hot"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "temperature"

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "x"}])
    assert "messages.0.role" in str(info.value)

    with pytest.raises(openai.BadRequestError, match="Input should be less than or equal to 1"):
        client.chat.completions.create(model=MODEL, messages=ask("hi"), n=2)

    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=ask("hi"))
    assert info.value.body["code"] == "model_not_found"


def test_prompt_over_the_context_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ask("tell me more " * 1000), max_tokens=5)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="tell me more " * 1000, max_tokens=5, stream=True)
    assert info.value.body["code"] == "context_length_exceeded"
    # The server still answers afterwards.
    assert client.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=3).choices[0].message.content


def test_concurrent_requests_each_get_their_own_usage(client: openai.OpenAI) -> None:
    # The model's stats belong to whichever request ran last; each answer must report its own.
    def complete(n: int) -> tuple[int, int, str]:
        reply = client.completions.create(model=MODEL, prompt=f"List the numbers from 1 to 50: 1, 2, 3, {n},",
                                          max_tokens=n, temperature=0, extra_body={"repeat_penalty": 1.0})
        return n, reply.usage.completion_tokens, reply.choices[0].finish_reason

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(complete, range(1, 33)))
    assert results == [(n, n, "length") for n in range(1, 33)]
