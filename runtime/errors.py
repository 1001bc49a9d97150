"""The runtime's exceptions, importable without loading llama.cpp, pydantic or httpx."""


class RegistryError(ValueError):
    """A model that cannot be found, read or installed; the message says which and why."""


class ModelNotFoundError(RegistryError, FileNotFoundError):
    """No such model or file (a FileNotFoundError, as gpt4all raises)."""


class ModelLoadError(RegistryError):
    """A model file that is missing, truncated or not GGUF."""


class ContextOverflowError(ValueError):
    """A prompt that does not fit the context window."""


class ClosedModelError(ValueError):
    """A GPT4All or Embed4All used after close() (or after leaving its `with` block); a ValueError, as
    gpt4all's "Attempted operation on a closed LLModel"."""
