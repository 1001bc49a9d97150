"""Chat templates: the Jinja templates of HF tokenizers / GGUF metadata, rendered in jinja2's sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """A chat template that does not parse or render."""


def _raise_exception(message: str) -> None:
    # HF templates call raise_exception() to reject conversations they cannot format.
    raise ChatTemplateError(message)


@lru_cache(maxsize=16)
def _compile(source: str):  # noqa: ANN202 - a jinja2 Template
    # The same options transformers uses for chat templates, so whitespace renders identically.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ChatTemplateError(f"chat template does not parse: {exc}") from None


def render_chat(
    template: str,
    messages: Sequence[dict[str, str]],
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """The conversation as the model expects to read it, ending where the assistant starts to speak."""
    try:
        return _compile(template).render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except ChatTemplateError:
        raise
    except TemplateError as exc:
        raise ChatTemplateError(f"chat template failed to render: {exc}") from None
