"""`GPT4All`: a GGUF model on the CPU through llama.cpp, with gpt4all 2.8.2's Python API.

    model = GPT4All()                                   # the bundled SmolLM2-135M-Instruct
    print(model.generate("The capital of France is", max_tokens=8))
    with model.chat_session(system_prompt="Be brief."):
        for piece in model.generate("Hi!", streaming=True):
            print(piece, end="")

Inside a chat session the conversation is rendered with a gpt4all prompt template (`{0}` the user's
message, `{1}` the reply) when one is given or catalogued, else with the model's own Jinja chat template
from the GGUF; the KV cache holds the tokens already seen, so each turn evaluates only what is new. Only
templates contribute special tokens: message text is tokenized as text, so `<|im_start|>` typed by a
user stays text.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import llama_cpp
import numpy as np

from runtime.errors import ClosedModelError, ContextOverflowError, ModelLoadError
from runtime.registry import Registry, download_file
from runtime.templates import render_chat

if TYPE_CHECKING:
    from runtime.localdocs import Hit, Library

GGUF_MAGIC = b"GGUF"
# The context is created with this prompt batch (gpt4all's LLMODEL_MAX_PROMPT_BATCH); a smaller per-call
# n_batch splits prefill further. Measured here: 128 prefills as fast as 512, loads faster and holds less.
# Flash attention stays off: on 2 cores it prefills 1,000 tokens ~10% faster and decodes ~15% faster, but a
# chat turn of 17 new tokens after 1,000 of history takes 104 ms instead of 75 (time to first token).
MAX_BATCH = 128

Callback = Callable[[int, str], bool]
Closing = Callable[[], list[int]]  # after a reply: the tokens that end its turn
Message = dict[str, str]
DEFAULT_PROMPT_TEMPLATE = "### Human:\n{0}\n\n### Assistant:\n"  # gpt4all's fallback (Alpaca)
GPU_DEVICES = ("gpu", "cuda", "kompute", "metal", "amd", "nvidia")


def empty_response_callback(token_id: int, response: str) -> bool:
    """gpt4all's default callback: never stops generation."""
    return True


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
    # OpenAI's, for the server: penalties, a seed (None: random), a GBNF grammar the output must follow
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    grammar: str | None = None
    logprobs: int | None = None  # record each sampled token's log-probability and this many alternatives


@dataclass
class TokenLogprob:
    """A sampled token's log-probability under the model (its raw logits), and the most likely tokens."""

    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class GenerationStats:
    """What the last call did: tokens evaluated for the prompt, tokens reused from the KV cache."""

    prompt_tokens: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


def leading_bytes(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(len(GGUF_MAGIC))


def is_gguf(path: Path) -> bool:
    """Whether `path` is a readable file that starts as a GGUF does."""
    try:
        return leading_bytes(path) == GGUF_MAGIC
    except OSError:
        return False


def check_gguf_file(path: Path) -> None:
    """Reject a missing or non-GGUF file with a clear message before llama.cpp sees it."""
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if (magic := leading_bytes(path)) != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")


def load_llama(path: Path, n_ctx: int, n_threads: int | None, n_gpu_layers: int = 0,
               verbose: bool = False) -> llama_cpp.Llama:
    """Open a GGUF with llama.cpp; a truncated or corrupt file raises ModelLoadError. The thread count
    applies to prompt processing (n_threads_batch) as well as to decoding."""
    check_gguf_file(path)
    threads = n_threads or min(os.cpu_count() or 1, 8)
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=MAX_BATCH,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=n_gpu_layers,
            verbose=verbose,
        )
    except (ValueError, RuntimeError):
        raise ModelLoadError(f"llama.cpp could not load {path.name}: {diagnose_gguf(path)}") from None


def gpu_layers(device: str | None, ngl: int) -> int:
    """Layers to offload for gpt4all's `device`: "cpu" (or None) runs on the CPU; a GPU name needs a
    llama.cpp built with a GPU backend, and is a clear error otherwise."""
    if device is None or device == "cpu":
        return 0
    name = device.split(":", 1)[0]
    if name not in GPU_DEVICES:
        raise ValueError(f"unknown device {device!r}: use 'cpu', or a GPU ('gpu', 'cuda', 'cuda:N', 'metal', "
                         "'kompute', 'amd', 'nvidia')")
    if not llama_cpp.llama_supports_gpu_offload():
        raise ValueError(f"device {device!r} is not available: this llama-cpp-python build runs on the CPU only "
                         "(device='cpu'); rebuild it with CMAKE_ARGS=-DGGML_CUDA=on (or -DGGML_METAL=on, "
                         "-DGGML_VULKAN=on) for a GPU")
    return ngl


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


@dataclass
class ChatSession:
    """An open chat: its messages (the system prompt first) and how they are rendered."""

    history: list[Message]
    prompt_template: str | None  # gpt4all style: "{0}" the user's message, "{1}" the reply
    chat_template: str | None  # Jinja, when there is no prompt template
    tokens: list[int] | None = None  # with a prompt template: the context so far, replies as generated
    library: Library | None = None  # LocalDocs collections each question is answered from


class GPT4All:
    """A local chat model; one generation at a time (calls from several threads queue)."""

    def __init__(
        self,
        model_name: str | None = None,
        *,
        model_path: str | os.PathLike[str] | None = None,
        model_type: str | None = None,
        allow_download: bool = True,
        n_threads: int | None = None,
        device: str | None = None,
        n_ctx: int = 2048,
        ngl: int = 100,
        verbose: bool = False,
    ) -> None:
        """gpt4all 2.8.2's constructor. model_name: a catalogue name or filename (".gguf" optional) or a
        path; None is the bundled SmolLM2-135M-Instruct. model_path: the folder holding (or receiving)
        the file. allow_download: fetch a catalogued model that is not on disk. device: "cpu", or a GPU
        where llama.cpp was built for one (ngl layers offloaded)."""
        self.model_type = model_type
        offloaded = gpu_layers(device, ngl)
        self.config: dict[str, Any] = self.retrieve_model(model_name, model_path=model_path,
                                                          allow_download=allow_download, verbose=verbose)
        self.path = Path(self.config["path"])
        self.name: str = self.config.get("name") or self.path.stem
        self._llama: llama_cpp.Llama | None = load_llama(self.path, n_ctx, n_threads, offloaded, verbose)
        self._backend = "cpu" if not offloaded else "metal" if device == "metal" else "cuda"
        # llama.cpp may round its context up; llama-cpp-python's token buffer keeps the size asked for.
        self.n_ctx = min(n_ctx, self.llama.n_ctx())
        self.chat_template: str | None = self.config.get("chatTemplate") or self.llama.metadata.get(
            "tokenizer.chat_template")
        self.lock = threading.RLock()
        self.stats = GenerationStats()
        self.generated: list[int] = []  # the last call's sampled tokens
        self.logprobs: list[TokenLogprob] = []  # and their log-probabilities, when asked for
        self._session: ChatSession | None = None
        self.sources: list[Hit] = []  # LocalDocs: the excerpts the last chat turn's prompt held, best first

    # -- gpt4all's model management ---------------------------------------------------------------

    @classmethod
    def retrieve_model(cls, model_name: str | None, model_path: str | os.PathLike[str] | None = None,
                       allow_download: bool = True, verbose: bool = False) -> dict[str, Any]:
        """The model's catalogue entry (models3.json fields) with "path" set to its local file,
        downloaded first when it is catalogued, missing and allow_download is on."""
        registry = Registry.default()
        entry, path = registry.locate(model_name, Path(model_path) if model_path is not None else None,
                                      allow_download=allow_download, verbose=verbose)
        config = entry.to_config() if entry else {"filename": path.name}
        config["path"] = str(path)
        return config

    @staticmethod
    def list_models() -> list[dict[str, Any]]:
        """The model catalogue in models3.json's format: the bundled model, the catalogue at
        $GPT4ALL_MODELS_URL (if set), the user's models.json and every run's quantized models."""
        return [entry.to_config() for entry in Registry.default().with_remote().entries.values()]

    @staticmethod
    def download_model(model_filename: str, model_path: str | os.PathLike[str], verbose: bool = True,
                       url: str | None = None, expected_size: int | None = None,
                       expected_md5: str | None = None) -> str | os.PathLike[str]:
        """Download `url` to model_path/model_filename, resuming an interrupted download; the size and
        MD5 are checked before the file is installed."""
        return download_file(model_filename, Path(model_path), url=url, expected_size=expected_size,
                             expected_md5=expected_md5, verbose=verbose)

    @staticmethod
    def list_gpus() -> list[str]:
        """GPU devices this build can use: none for a CPU-only llama.cpp (gpt4all raises ValueError when
        it cannot list devices; so does this, with the reason)."""
        if not llama_cpp.llama_supports_gpu_offload():
            raise ValueError("Unable to retrieve available GPU devices: this llama-cpp-python build is CPU-only")
        return ["gpu"]

    @property
    def backend(self) -> Literal["cpu", "kompute", "cuda", "metal"]:
        return self._backend  # type: ignore[return-value]

    @property
    def device(self) -> str | None:
        """The GPU in use, or None on the CPU (as gpt4all)."""
        return None if self._backend == "cpu" else self._backend

    @property
    def llama(self) -> llama_cpp.Llama:
        """The llama.cpp model; after close() every use raises ClosedModelError (llama.cpp itself would
        crash the process on its freed context)."""
        if self._llama is None:
            raise ClosedModelError(f"Attempted operation on a closed GPT4All ({self.name}): it was closed by "
                                   "close() or by leaving its `with` block; load it again")
        return self._llama

    def close(self) -> None:
        """Free the model; it cannot be used afterwards (a second close does nothing)."""
        with self.lock:  # waits for a generation running in another thread
            if self._llama is not None:
                self._llama.close()
                self._llama = None
            self._session = None

    def __enter__(self) -> GPT4All:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- generation ------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = 200,
        temp: float = 0.7,
        top_k: int = 40,
        top_p: float = 0.4,
        min_p: float = 0.0,
        repeat_penalty: float = 1.18,
        repeat_last_n: int = 64,
        n_batch: int = 8,
        n_predict: int | None = None,
        streaming: bool = False,
        callback: Callback = empty_response_callback,
    ) -> Any:
        """Continue `prompt` (or, inside a chat session, answer it as the user's next turn). n_predict is
        gpt4all's older name for max_tokens."""
        limit = n_predict if n_predict is not None else max_tokens
        params = SamplingParams(limit, temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n, n_batch)
        if self._session is not None:
            pieces = self._chat_turn(prompt, params, callback)
        else:
            pieces = self.stream_tokens(self.tokenize([(prompt, False)], add_bos=True), params, callback)
        return pieces if streaming else "".join(pieces)

    def tokenize(self, parts: list[tuple[str, bool]], add_bos: bool = False) -> list[int]:
        """Token ids of text parts; (text, True) parses special tokens (template text), (text, False) does
        not (what users wrote)."""
        tokens: list[int] = []
        for text, special in parts:
            if text:
                tokens += self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos and not tokens and self._adds_bos(),
                                              special=special)
        return tokens

    def stream_text(self, text: str, params: SamplingParams, callback: Callback | None = None) -> Iterator[str]:
        """Generate after raw text whose special tokens are honoured (an OpenAI completions prompt)."""
        return self.stream_tokens(self.tokenize([(text, True)], add_bos=True), params, callback)

    def stream_tokens(self, tokens: list[int], params: SamplingParams, callback: Callback | None = None,
                      closing: Closing | None = None) -> Iterator[str]:
        """Sample after `tokens`, reusing the KV cache for the prefix they share with the last call; when the
        reply is complete, evaluate the tokens `closing()` says end the turn (a chat template's).

        The prompt is checked now (empty, over the context: ValueError); sampling starts on iteration.
        """
        n_ctx = self.n_ctx
        self.llama  # noqa: B018 - a closed model refuses before anything is queued
        if not tokens:
            raise ValueError("the prompt is empty")
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(f"the prompt is {len(tokens)} tokens; the context window is {n_ctx}")
        budget = max(0, min(params.max_tokens, n_ctx - len(tokens)))
        return self._locked_sample(tokens, params, budget, callback, closing)

    def _locked_sample(self, tokens: list[int], params: SamplingParams, budget: int, callback: Callback | None,
                       closing: Closing | None) -> Iterator[str]:
        with self.lock:
            yield from self._sample(tokens, params, budget, callback)
            if closing is not None and (ending := closing()):
                self._evaluate_closing(tokens, ending)

    def _evaluate_closing(self, tokens: list[int], closing: list[int]) -> None:
        """Bring the KV cache to the end of the finished turn: the last sampled token (sampled, not yet
        evaluated) and the template's closing tokens, as gpt4all's llmodel does before prompt() returns;
        the next turn then evaluates only its own tokens. Skipped when they would not fit the context."""
        llama = self.llama
        pending = [*tokens, *self.generated][llama.n_tokens :] + closing
        if llama.n_tokens + len(pending) <= self.n_ctx:
            llama.eval(pending)

    def _sample(self, tokens: list[int], params: SamplingParams, budget: int, callback: Callback | None) -> Iterator[str]:
        """Prefill what the KV cache lacks, then sample token by token. The repeat penalty sees the last
        repeat_last_n tokens of the context, prompt included (as gpt4all's does)."""
        llama = self.llama
        # KV reuse: keep the cached prefix shared with this prompt and evaluate only the rest (at
        # least the last token, whose logits choose the first new one).
        # A seeded call evaluates its whole prompt: KV reuse changes how the prompt is batched, which moves
        # the logits in their last bits, which is enough to change a sampled token.
        reused = 0 if params.seed is not None else min(cached_prefix(llama, tokens), len(tokens) - 1)
        llama.n_tokens = reused  # eval() drops every cached position from here on
        self.stats = GenerationStats(prompt_tokens=len(tokens), prefill_tokens=len(tokens) - reused, reused_tokens=reused)
        self.generated = []  # this call's tokens, as sampled
        self.logprobs = []  # with params.logprobs
        llama.n_batch = max(1, min(params.n_batch, MAX_BATCH))
        llama.eval(tokens[reused:])
        llama.n_batch = MAX_BATCH
        if budget == 0:
            return
        llama.last_n_tokens_size = max(0, params.repeat_last_n)
        llama.set_seed(params.seed if params.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED)
        grammar = llama_cpp.LlamaGrammar.from_string(params.grammar, verbose=False) if params.grammar else None
        sampler = llama._init_sampler(top_k=params.top_k, top_p=params.top_p, min_p=params.min_p, typical_p=1.0,
                                      temp=params.temp, repeat_penalty=params.repeat_penalty,
                                      frequency_penalty=params.frequency_penalty,
                                      presence_penalty=params.presence_penalty, grammar=grammar)
        # Only the penalties see the prompt (a grammar must not): _init_sampler adds them to its chain first.
        penalties = llama_cpp.llama_sampler_chain_get(sampler.sampler, 0)
        for token in tokens[-params.repeat_last_n:] if params.repeat_last_n > 0 else []:
            llama_cpp.llama_sampler_accept(penalties, token)
        vocab = llama._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.stats.finish_reason = "length"
        try:
            while True:
                token = sampler.sample(llama._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    self.stats.finish_reason = "stop"
                    break
                self.stats.completion_tokens += 1
                self.generated.append(token)
                if params.logprobs is not None:
                    self.logprobs.append(token_logprob(llama, token, params.logprobs))
                piece = decoder.decode(llama.detokenize([token], special=False))
                if piece:
                    yield piece
                if callback is not None and callback(token, piece) is False:
                    self.stats.finish_reason = "stop"
                    break
                if self.stats.completion_tokens >= budget:
                    break
                self.llama.eval([token])  # (not `llama`: the caller may have closed the model meanwhile)
        finally:
            sampler.close()
        if tail := decoder.decode(b"", final=True):
            yield tail

    def _adds_bos(self) -> bool:
        return bool(self.llama._model.add_bos_token())

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize([(text, True)], add_bos=True))

    # -- chat -------------------------------------------------------------------------------------

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
            bos_token=self.special_text(vocab.token_bos()),
            eos_token=self.special_text(vocab.token_eos()),
        )

    def chat_tokens(self, messages: list[Message], chat_template: str | None = None,
                    add_generation_prompt: bool = True) -> list[int]:
        """The conversation rendered with a Jinja chat template. The template's text may hold special
        tokens, the messages' text never does: a message whose text would tokenize into special tokens
        (`<|im_start|>` typed by a user) is rendered as a marker and tokenized as plain text in its place;
        the rest is tokenized as one string, so tokens merge across the template as the model learned."""
        forged = {index for index, m in enumerate(messages) if self.has_special_text(m["content"])}
        markers = {index: f"\x00{index}\x00" for index in forged}
        rendered = self.render([{**m, "content": markers[i]} if i in forged else m for i, m in enumerate(messages)],
                               chat_template, add_generation_prompt)
        parts: list[tuple[str, bool]] = []
        for piece in re.split("(\x00\\d+\x00)", rendered):
            if piece.startswith("\x00"):
                parts.append((messages[int(piece.strip("\x00"))]["content"], False))
            else:
                parts.append((piece, True))
        # A template that writes the BOS itself (Llama 3's) must not get a second one.
        return self.tokenize(parts, add_bos=not rendered.startswith(self.special_text(self.llama._model.token_bos())))

    def special_text(self, token: int) -> str:
        return self.llama.detokenize([token], special=True).decode("utf-8", "replace")

    def has_special_text(self, text: str) -> bool:
        encoded = text.encode("utf-8")
        return self.llama.tokenize(encoded, add_bos=False, special=True) != self.llama.tokenize(
            encoded, add_bos=False, special=False)

    def stream_chat(self, messages: list[Message], params: SamplingParams, callback: Callback | None = None,
                    chat_template: str | None = None) -> Iterator[str]:
        """Answer a whole conversation (the OpenAI chat shape); the KV cache keeps the shared prefix."""
        return self.stream_tokens(self.chat_tokens(messages, chat_template), params, callback)

    @contextmanager
    def chat_session(self, system_prompt: str | None = None, prompt_template: str | None = None, *,
                     chat_template: str | None = None, localdocs: list[str] | None = None) -> Iterator[GPT4All]:
        """Keep a conversation: each generate() call is the user's next turn.

        As gpt4all: system_prompt defaults to the catalogue's systemPrompt, prompt_template to its
        promptTemplate ("{0}" the message, "{1}" the reply; a literal "%1" is refused). Without either,
        the model's Jinja chat template renders the conversation (or `chat_template`, a Jinja template);
        a model with neither gets gpt4all's Alpaca fallback. localdocs: LocalDocs collections (`python -m
        runtime docs add`); each turn's prompt gets the excerpts that fit beside the answer, and
        `model.sources` lists them."""
        self.llama  # noqa: B018 - a closed model refuses here, not at the first turn
        system = system_prompt if system_prompt is not None else self.config.get("systemPrompt", "")
        template = prompt_template if prompt_template is not None else self.config.get("promptTemplate")
        if template is not None and re.search(r"%1(?![0-9])", template):
            raise ValueError("Prompt template containing a literal '%1' is not supported. For a prompt "
                             "placeholder, please use '{0}' instead.")
        if template is None and not (chat_template or self.chat_template):
            template = DEFAULT_PROMPT_TEMPLATE
        library = None
        if localdocs:
            from runtime.localdocs import Library

            library = Library(localdocs)
        self._session = ChatSession([{"role": "system", "content": system}], template, chat_template, library=library)
        try:
            yield self
        finally:
            self._session = None
            if library is not None:
                library.close()

    @property
    def current_chat_session(self) -> list[Message] | None:
        """The messages of the open chat session, the system prompt first; None outside one."""
        return None if self._session is None else [dict(m) for m in self._session.history]

    def reset_chat(self) -> None:
        """Forget the turns of the open chat session, keeping its system prompt."""
        if self._session is not None:
            del self._session.history[1:]
            self._session.tokens = None

    def _chat_turn(self, prompt: str, params: SamplingParams, callback: Callback | None) -> Iterator[str]:
        session = self._session
        assert session is not None
        text = prompt if session.library is None else self._with_localdocs(session, prompt, params.max_tokens)
        tokens, close, closing = self._turn_tokens(session, text)
        # Raises before the history changes when the turn cannot be answered (e.g. over the context).
        pieces = self.stream_tokens(tokens, params, callback, close)
        session.history.append({"role": "user", "content": prompt})  # as asked; the excerpts were this turn's
        return self._record_reply(pieces, session, tokens, closing)

    def _with_localdocs(self, session: ChatSession, prompt: str, max_tokens: int) -> str:
        """The prompt headed by the LocalDocs excerpts that fit the context beside a max_tokens answer."""
        assert session.library is not None
        headed, self.sources = session.library.excerpted(
            prompt, lambda text: len(self._turn_tokens(session, text)[0]), self.n_ctx - max_tokens)
        return headed

    def _turn_tokens(self, session: ChatSession, prompt: str) -> tuple[list[int], Closing, list[int]]:
        """The context for the user's next turn, what ends the reply's turn, and (with a prompt template)
        its closing tokens."""
        user = {"role": "user", "content": prompt}
        closing: list[int] = []  # with a prompt template: its end of turn
        if session.prompt_template is None:
            shown = [m for m in [*session.history, user] if m["role"] != "system" or m["content"]]
            tokens = self.chat_tokens(shown, session.chat_template)

            def close() -> list[int]:
                return self.jinja_closing(shown, tokens, session.chat_template)
        else:
            before, after, tail = split_prompt_template(session.prompt_template)
            closing = self.tokenize([(tail, True)])
            if session.tokens is None:
                parts = prompt_template_parts([*session.history, user], session.prompt_template)
                tokens = self.tokenize(parts, add_bos=True)
            else:  # as gpt4all: the context so far (each reply as it was generated, closed), then this turn
                tokens = session.tokens + self.tokenize([(before, True), (prompt, False), (after, True)])

            def close() -> list[int]:
                return closing
        return tokens, close, closing

    def jinja_closing(self, shown: list[Message], tokens: list[int], chat_template: str | None) -> list[int]:
        """The tokens a Jinja chat template puts after the reply just generated to end the turn, when the
        conversation with the reply re-renders to `tokens` + the reply's tokens as generated (else none: the
        next turn's KV reuse finds where they part)."""
        done = [*tokens, *self.generated]
        reply = self.llama.detokenize(self.generated).decode("utf-8", errors="replace")
        full = self.chat_tokens([*shown, {"role": "assistant", "content": reply}], chat_template,
                                add_generation_prompt=False)
        return full[len(done):] if full[: len(done)] == done else []

    def _record_reply(self, pieces: Iterator[str], session: ChatSession, tokens: list[int],
                      closing: list[int]) -> Iterator[str]:
        reply = {"role": "assistant", "content": ""}
        session.history.append(reply)
        try:
            for piece in pieces:
                reply["content"] += piece
                yield piece
        finally:
            if session.prompt_template is not None:
                session.tokens = tokens + self.generated + closing


def token_logprob(llama: llama_cpp.Llama, token: int, alternatives: int) -> TokenLogprob:
    """log-softmax of the last evaluated position's logits, at `token` and at the top `alternatives`."""
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),))
    peak = float(logits.max())
    log_total = peak + float(np.log(np.exp(logits - peak).sum()))
    top = np.argpartition(-logits, alternatives)[:alternatives] if alternatives else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-logits[top])]
    return TokenLogprob(token, float(logits[token]) - log_total,
                        [(int(t), float(logits[t]) - log_total) for t in top])


def split_prompt_template(template: str) -> tuple[str, str, str]:
    """A gpt4all prompt template's text before the message, between it and the reply, and after the reply
    (a blank line when the template has no "{1}", as gpt4all's llmodel)."""
    head, reply, tail = template.partition("{1}")
    before, _, after = head.partition("{0}")
    return before.format(), after.format(), tail.format() if reply else "\n\n"


def prompt_template_parts(history: list[Message], template: str) -> list[tuple[str, bool]]:
    """A conversation through a gpt4all prompt template, as (text, parse special tokens) parts: the system
    prompt and template text are template text; messages are plain text. A finished turn is the template
    with the reply at "{1}" (or after it); the open turn stops where the reply would start."""
    before, after, tail = split_prompt_template(template)
    parts: list[tuple[str, bool]] = [(history[0]["content"], True)] if history and history[0]["role"] == "system" else []
    for message in history:
        if message["role"] == "user":
            parts += [(before, True), (message["content"], False), (after, True)]
        elif message["role"] == "assistant":
            parts += [(message["content"], False), (tail, True)]
    return parts
