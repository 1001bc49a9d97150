"""Terminal chat: streaming answers, `/reset` to start over, `/exit` (or end of input) to leave."""

from __future__ import annotations

from typing import TextIO

from runtime.model import GPT4All

HELP = "Type a message. /reset starts a new conversation, /exit quits."


def chat_loop(model: GPT4All, stdin: TextIO, stdout: TextIO, system_prompt: str | None = None,
              max_tokens: int = 200, temp: float = 0.7, localdocs: list[str] | None = None) -> int:
    """Run the REPL until /exit or end of input; returns the number of answered turns. With `localdocs`
    (collection names), each answer is followed by the sources its prompt held."""
    turns = 0
    print(f"{model.name} — {HELP}", file=stdout, flush=True)
    with model.chat_session(system_prompt=system_prompt, localdocs=localdocs):
        while True:
            print("> ", end="", file=stdout, flush=True)
            line = stdin.readline()
            if not line:  # end of input
                print(file=stdout)
                break
            text = line.strip()
            if not text:
                continue
            if text == "/exit":
                break
            if text == "/reset":
                model.reset_chat()
                print("(new conversation)", file=stdout, flush=True)
                continue
            for piece in model.generate(text, max_tokens=max_tokens, temp=temp, streaming=True):
                print(piece, end="", file=stdout, flush=True)
            print(file=stdout, flush=True)
            if localdocs:
                print(sources_line(model), file=stdout, flush=True)
            turns += 1
    return turns


def sources_line(model: GPT4All) -> str:
    """The LocalDocs excerpts the last answer was given, as one line."""
    from runtime.localdocs.context import label

    cited = "; ".join(f"[{n}] {label(hit)}" for n, hit in enumerate(model.sources, start=1))
    return f"Sources: {cited or 'none found'}"
