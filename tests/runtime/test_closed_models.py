"""A closed GPT4All or Embed4All refuses every use with a clear error; llama.cpp on a freed context would
kill the process (SIGSEGV), so each case runs in its own Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GPT4ALL_CASES = """
import sys
from runtime import GPT4All
from runtime.errors import ClosedModelError
from runtime.model import SamplingParams

def refused(call):
    try:
        result = call()
        if hasattr(result, "__next__"):
            next(result)
    except ClosedModelError as exc:
        assert "closed GPT4All" in str(exc), exc
        return True
    return False

m = GPT4All(n_threads=1)
m.close()
m.close()  # a second close does nothing
calls = {
    "generate": lambda: m.generate("Hi", max_tokens=2),
    "generate(streaming)": lambda: m.generate("Hi", max_tokens=2, streaming=True),
    "chat_session": lambda: m.chat_session().__enter__(),
    "tokenize": lambda: m.tokenize([("Hi", False)]),
    "count_tokens": lambda: m.count_tokens("Hi"),
    "render": lambda: m.render([{"role": "user", "content": "Hi"}]),
    "chat_tokens": lambda: m.chat_tokens([{"role": "user", "content": "Hi"}]),
    "stream_chat": lambda: m.stream_chat([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=2)),
    "stream_text": lambda: m.stream_text("Hi", SamplingParams(max_tokens=2)),
    "stream_tokens": lambda: m.stream_tokens([1, 2, 3], SamplingParams(max_tokens=2)),
}
print(sorted(name for name, call in calls.items() if not refused(call)))

with GPT4All(n_threads=1) as w:
    w.generate("Hi", max_tokens=1)
print(refused(lambda: w.generate("Hi", max_tokens=2)))

s = GPT4All(n_threads=1)
with s.chat_session():
    pieces = s.generate("Count to ten.", max_tokens=8, temp=0, streaming=True)
    next(pieces)
    s.close()  # closed mid-stream: the stream stops with the error instead of touching freed memory
    print(refused(lambda: list(pieces)))
"""

EMBED4ALL_CASES = """
from runtime import Embed4All
from runtime.errors import ClosedModelError

def refused(call):
    try:
        call()
    except ClosedModelError as exc:
        assert "closed Embed4All" in str(exc), exc
        return True
    return False

with Embed4All() as e:
    e.embed("hello")
print(refused(lambda: e.embed("hello")), refused(lambda: e.embed(["a", "b"], dimensionality=64)),
      refused(lambda: e.embed_array(["a"])))
"""


def run(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout.split("\n")


def test_every_use_of_a_closed_gpt4all_raises_instead_of_crashing() -> None:
    assert run(GPT4ALL_CASES)[:3] == ["[]", "True", "True"]


def test_every_use_of_a_closed_embed4all_raises() -> None:
    assert run(EMBED4ALL_CASES)[0] == "True True True"
