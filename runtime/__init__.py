"""The CPU inference runtime: GPT4All-style Python API, terminal chat and an OpenAI-compatible server.

`import runtime` alone loads nothing heavy: `from runtime import GPT4All` loads llama.cpp's bindings (as
gpt4all's import loads its own), and Embed4All loads torch when it first embeds.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.embed import Embed4All
    from runtime.model import GPT4All

__all__ = ["GPT4All", "Embed4All"]


def __getattr__(name: str) -> Any:
    if name == "GPT4All":
        from runtime.model import GPT4All

        return GPT4All
    if name == "Embed4All":
        from runtime.embed import Embed4All

        return Embed4All
    raise AttributeError(name)
