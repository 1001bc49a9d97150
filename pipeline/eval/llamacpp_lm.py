"""An lm-eval model over a GGUF file, in process through llama.cpp: log-likelihoods from the logits.

(Not through an HTTP server: llama.cpp's server echoes prompt logprobs shifted by one token.)
Context/continuation are split into tokens the way lm-eval's HF model does, so both backends score the
same token sequences; requests that share a context reuse the KV cache for it.
"""

from __future__ import annotations

import numpy as np
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from tqdm import tqdm

from runtime.model import cached_prefix


def log_softmax_at(logits: np.ndarray, tokens: list[int]) -> tuple[float, bool]:
    """Sum of log p(token) over rows of logits, and whether each token was the argmax."""
    rows = logits.astype(np.float64)
    peak = rows.max(axis=-1, keepdims=True)
    logz = np.log(np.exp(rows - peak).sum(axis=-1)) + peak[:, 0]
    picked = rows[np.arange(len(tokens)), tokens]
    return float((picked - logz).sum()), bool((rows.argmax(axis=-1) == np.array(tokens)).all())


class LlamaCppLM(LM):
    """lm-eval `LM` for multiple-choice (loglikelihood) tasks on a GGUF file."""

    def __init__(self, path: str, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        super().__init__()
        import llama_cpp

        self.llama = llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=512, logits_all=True, n_threads=n_threads,
                                     verbose=False)
        self.n_ctx = n_ctx
        self.eot = self.llama.token_eos()
        self.add_bos = bool(self.llama._model.add_bos_token())

    def tok_encode(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def split_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-eval's rule: trailing spaces move to the continuation; the continuation is what the whole
        adds to the context's tokens."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tok_encode(context + continuation)
        context_ids = self.tok_encode(context)
        prefix = [self.llama.token_bos()] if self.add_bos else []
        if not context_ids and not prefix:
            prefix = [self.eot]
        return prefix + context_ids, whole[len(context_ids) :]

    def score(self, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
        tokens = (context_ids + continuation_ids)[-self.n_ctx :]
        shared = cached_prefix(self.llama, tokens)
        start = len(tokens) - len(continuation_ids)
        # Keep the cached prefix up to the last context token at most: every position that predicts the
        # continuation is recomputed with vocabulary-wide logits, the context before it without them.
        keep = min(shared, start - 1)
        self.llama.n_tokens = keep
        self.llama._logits_all = False
        self.llama.eval(tokens[keep : start - 1])
        self.llama._logits_all = True
        self.llama.eval(tokens[start - 1 :])
        logits = np.asarray(self.llama.scores[start - 1 : len(tokens) - 1])
        return log_softmax_at(logits, tokens[start:])

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self.split_pair(*request.args) for request in requests]
        order = sorted(range(len(pairs)), key=lambda i: pairs[i][0])  # shared contexts next to each other
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for i in tqdm(order, desc="gguf loglikelihood", disable=disable_tqdm):
            results[i] = self.score(*pairs[i])
        return results

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Whole-text log-likelihood in non-overlapping windows of the context size."""
        out = []
        for request in tqdm(requests, desc="gguf rolling", disable=disable_tqdm):
            tokens = [self.eot, *self.tok_encode(request.args[0])]
            total = 0.0
            for start in range(0, len(tokens) - 1, self.n_ctx - 1):
                window = tokens[start : start + self.n_ctx]
                self.llama.n_tokens = 0
                total += self.score(window[:1], window[1:])[0]
            out.append(total)
        return out

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError("the GGUF backend scores multiple-choice tasks; generation tasks are not supported")
