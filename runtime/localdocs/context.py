"""The user's question with the retrieved excerpts in front of it, cut to the context budget.

The excerpts go into the user's turn (as GPT4All's LocalDocs does), best first, each headed with its
number and file so the answer can cite it. Whether they fit is measured with the model's own tokenizer on
the whole prompt: an excerpt is taken only if the prompt with it still leaves room for the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runtime.localdocs.store import Hit

# Retrieved per question before the budget cut (GPT4All's LocalDocs default is 3; a 2048 context holds ~6
# of our 160-token chunks beside a short conversation and a 200-token answer).
TOP_K = 4
INSTRUCTION = ("Answer the question using the excerpts from the user's documents below; "
               "name the file an answer comes from.")


def label(hit: Hit) -> str:
    return hit.relative + (f", page {hit.page}" if hit.page is not None else "")


def with_excerpts(question: str, hits: Sequence[Hit]) -> str:
    """The question, headed by the excerpts (unchanged when there are none)."""
    if not hits:
        return question
    excerpts = "\n\n".join(f"[{n}] {label(hit)}\n{hit.text}" for n, hit in enumerate(hits, start=1))
    return f"{INSTRUCTION}\n\n{excerpts}\n\nQuestion: {question}"


def fit_excerpts(question: str, hits: Sequence[Hit], prompt_tokens: Callable[[str], int], budget: int) -> list[Hit]:
    """The hits, best first, that fit: `prompt_tokens(text)` is the whole prompt's length with `text` as
    the user's turn, which must stay within `budget` (the context less the answer's tokens). A long hit
    that does not fit is passed over for a shorter one after it."""
    chosen: list[Hit] = []
    for hit in hits:
        if prompt_tokens(with_excerpts(question, [*chosen, hit])) <= budget:
            chosen.append(hit)
    return chosen
