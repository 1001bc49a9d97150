"""`GPT4All`: a GGUF model on the CPU through llama.cpp, with GPT4All's Python API.

    model = GPT4All()                                   # the bundled SmolLM2-135M-Instruct
    print(model.generate("The capital of France is", max_tokens=8))
    with model.chat_session(system_message="Be brief."):
        for piece in model.generate("Hi!", streaming=True):
            print(piece, end="")

Inside a chat session the conversation is rendered with the model's chat template and the KV cache
holds the tokens already seen, so each turn evaluates only the tokens that are new in that turn.
"""

from __future__ import annotations

import codecs
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
import llama_cpp

from runtime.registry import Registry, RegistryError
from runtime.templates import render_chat

GGUF_MAGIC = b"GGUF"
# The context is created with this prompt batch; a smaller per-call n_batch splits prefill further.
MAX_BATCH = 512

Callback = Callable[[int, str], bool]
Message = dict[str, str]


class ModelLoadError(RegistryError):
    """A model file that is missing, truncated or not GGUF."""


class ContextOverflowError(ValueError):
    """A prompt that does not fit the context window."""


@dataclass
class SamplingParams:
    """GPT4All's generation parameters and defaults."""

    max_tokens: int = 200
    temp: float = 0.7
    top_k: int = 40
    top_p: float = 0.4
    min_p: float = 0.0
    repeat_penalty: float = 1.18
    repeat_last_n: int = 64
    n_batch: int = 8


@dataclass
class GenerationStats:
    """What the last call did: tokens evaluated for the prompt, tokens reused from the KV cache."""

    prompt_tokens: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


def check_gguf_file(path: Path) -> None:
    """Reject a missing or non-GGUF file with a clear message before llama.cpp sees it."""
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")


def load_llama(path: Path, n_ctx: int, n_threads: int | None, verbose: bool = False) -> llama_cpp.Llama:
    """Open a GGUF with llama.cpp; a truncated or corrupt file raises ModelLoadError."""
    check_gguf_file(path)
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=MAX_BATCH,
            n_threads=n_threads or min(os.cpu_count() or 1, 8),
            verbose=verbose,
        )
    except (ValueError, RuntimeError):
        raise ModelLoadError(f"llama.cpp could not load {path}: {diagnose_gguf(path)}") from None


def diagnose_gguf(path: Path) -> str:
    """Why a GGUF file that llama.cpp rejected is unusable, in words."""
    from gguf import GGUFReader

    size = path.stat().st_size
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # any parse failure means a damaged header or tensor table
        return f"the file is damaged or truncated ({size} bytes; the GGUF reader says: {exc})"
    needed = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if size < needed:
        return f"the file is truncated: {size} bytes, its tensors need {needed}"
    return f"the file parses as GGUF ({size} bytes) but llama.cpp does not support it"


def cached_prefix(llama: llama_cpp.Llama, tokens: list[int]) -> int:
    """How many leading tokens of `tokens` are already in llama's KV cache."""
    shared = 0
    for cached, new in zip(llama._input_ids, tokens, strict=False):
        if cached != new:
            break
        shared += 1
    return shared


class GPT4All:
    """A local chat model; one generation at a time (calls from several threads queue)."""

    def __init__(
        self,
        model_name: str | None = None,
        model_path: str | Path | None = None,
        n_threads: int | None = None,
        n_ctx: int = 2048,
        allow_download: bool = False,
        verbose: bool = False,
    ) -> None:
        registry = Registry.default()
        if model_path is not None:
            registry.models_dir = Path(model_path)
            if model_name and (Path(model_path) / model_name).is_file():
                model_name = str(Path(model_path) / model_name)
        self.name, self.path = registry.resolve(model_name, allow_download=allow_download)
        entry = registry.entries.get(self.name)
        self.llama = load_llama(self.path, n_ctx, n_threads, verbose)
        # llama.cpp may round its context up; llama-cpp-python's token buffer keeps the size asked for.
        self.n_ctx = min(n_ctx, self.llama.n_ctx())
        self.chat_template: str | None = (entry and entry.chatTemplate) or self.llama.metadata.get(
            "tokenizer.chat_template"
        )
        self.default_system_message: str | None = entry.systemMessage if entry else None
        self.lock = threading.RLock()
        self.stats = GenerationStats()
        self._history: list[Message] | None = None
        self._session_template: str | None = None

    # -- plain text -------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        max_tokens: int = 200,
        temp: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.4,
        min_p: float = 0.0,
        repeat_penalty: float = 1.18,
        repeat_last_n: int = 64,
        n_batch: int = 8,
        streaming: bool = False,
        callback: Callback | None = None,
    ) -> str | Iterator[str]:
        """Continue `prompt` (or, inside a chat session, answer it as the user's next turn)."""
        params = SamplingParams(max_tokens, temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, n_batch)
        if self._history is not None:
            pieces = self._chat_turn(prompt, params, callback)
        else:
            pieces = self.stream_text(prompt, params, callback)
        return pieces if streaming else "".join(pieces)

    def stream_text(self, text: str, params: SamplingParams, callback: Callback | None = None) -> Iterator[str]:
        """Generate after raw text (the special tokens of a rendered template are honoured)."""
        tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=self._adds_bos(), special=True)
        return self.stream_tokens(tokens, params, callback)

    def stream_tokens(self, tokens: list[int], params: SamplingParams, callback: Callback | None = None) -> Iterator[str]:
        """Sample after `tokens`, reusing the KV cache for the prefix they share with the last call.

        The prompt is checked now (empty, over the context: ValueError); sampling starts on iteration.
        """
        n_ctx = self.n_ctx
        if not tokens:
            raise ValueError("the prompt is empty")
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(f"the prompt is {len(tokens)} tokens; the context window is {n_ctx}")
        budget = min(params.max_tokens, n_ctx - len(tokens))
        return self._locked_sample(tokens, params, budget, callback)

    def _locked_sample(self, tokens: list[int], params: SamplingParams, budget: int, callback: Callback | None) -> Iterator[str]:
        with self.lock:
            yield from self._sample(tokens, params, budget, callback)

    def _sample(self, tokens: list[int], params: SamplingParams, budget: int, callback: Callback | None) -> Iterator[str]:
        llama = self.llama
        # KV reuse: keep the cached prefix shared with this prompt and evaluate only the rest (at
        # least the last token, whose logits choose the first new one).
        reused = min(cached_prefix(llama, tokens), len(tokens) - 1)
        llama.n_tokens = reused  # eval() drops every cached position from here on
        self.stats = GenerationStats(prompt_tokens=len(tokens), prefill_tokens=len(tokens) - reused, reused_tokens=reused)
        # Both are read by llama-cpp-python for this call: the repeat-penalty window and prefill batch.
        llama.last_n_tokens_size = params.repeat_last_n
        llama.n_batch = max(1, min(params.n_batch, MAX_BATCH))
        vocab = llama._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stats.finish_reason = "length"
        for token in llama.generate(
            tokens[reused:],
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temp,
            repeat_penalty=params.repeat_penalty,
            reset=False,
        ):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                self.stats.finish_reason = "stop"
                break
            self.stats.completion_tokens += 1
            piece = decoder.decode(llama.detokenize([token], special=False))
            if piece:
                yield piece
            if callback is not None and callback(token, piece) is False:
                self.stats.finish_reason = "stop"
                break
            if self.stats.completion_tokens >= budget:
                break
        if tail := decoder.decode(b"", final=True):
            yield tail

    def _adds_bos(self) -> bool:
        return bool(self.llama._model.add_bos_token())

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=self._adds_bos(), special=True))

    # -- chat -------------------------------------------------------------------------------

    def render(self, messages: list[Message], chat_template: str | None = None, add_generation_prompt: bool = True) -> str:
        """The conversation in the model's own chat format, ready for the assistant's answer."""
        template = chat_template or self.chat_template
        if not template:
            raise ValueError(f"model {self.name!r} has no chat template; pass chat_template=...")
        vocab = self.llama._model
        return render_chat(
            template,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.llama.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace"),
            eos_token=self.llama.detokenize([vocab.token_eos()], special=True).decode("utf-8", "replace"),
        )

    def stream_chat(self, messages: list[Message], params: SamplingParams, callback: Callback | None = None,
                    chat_template: str | None = None) -> Iterator[str]:
        """Answer a whole conversation (the OpenAI chat shape); the KV cache keeps the shared prefix."""
        return self.stream_text(self.render(messages, chat_template), params, callback)

    @contextmanager
    def chat_session(self, system_message: str | None = None, chat_template: str | None = None) -> Iterator[GPT4All]:
        """Keep a conversation: each generate() call is the user's next turn."""
        system = system_message if system_message is not None else self.default_system_message
        self._history = [{"role": "system", "content": system}] if system else []
        self._session_template = chat_template
        try:
            yield self
        finally:
            self._history = None
            self._session_template = None

    @property
    def current_chat_session(self) -> list[Message]:
        """The messages of the open chat session (empty outside one)."""
        return list(self._history or [])

    def reset_chat(self) -> None:
        """Forget the turns of the open chat session, keeping its system message."""
        if self._history is not None:
            self._history = [m for m in self._history if m["role"] == "system"]

    def _chat_turn(self, prompt: str, params: SamplingParams, callback: Callback | None) -> Iterator[str]:
        assert self._history is not None
        user = {"role": "user", "content": prompt}
        # Raises before the history changes when the turn cannot be answered (e.g. over the context).
        pieces = self.stream_chat([*self._history, user], params, callback, self._session_template)
        self._history.append(user)
        return self._record_reply(pieces, self._history)

    @staticmethod
    def _record_reply(pieces: Iterator[str], history: list[Message]) -> Iterator[str]:
        reply: list[str] = []
        try:
            for piece in pieces:
                reply.append(piece)
                yield piece
        finally:
            history.append({"role": "assistant", "content": "".join(reply)})
