"""lm-eval's HF model, scoring a multiple-choice document's shared context once for all its choices.

lm-eval's HFLM evaluates every (context, choice) pair as a full sequence, so a HellaSwag context runs four
times. Here requests whose token sequences share a prefix (a document's choices; BoolQ questions on one
passage) are grouped, and groups are packed into rows of a few hundred tokens with no padding: each group's
prefix once, then each member's own tokens, an attention mask letting a member see only its group's prefix
and itself; vocabulary-wide logits are computed only at the positions that predict continuation tokens. Tokenization, truncation and the answer (sum of log p,
greedy match) are HFLM's own, so each document's log-likelihoods match it to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

MAX_GROUP = 32  # requests in one group (bounds the rows of one continuation batch)

Request = tuple[tuple[str, str] | None, list[int], list[int]]


@dataclass
class Group:
    """Requests sharing the first `prefix` tokens of their inputs, none of which needs its logits."""

    prefix: int
    members: list[int] = field(default_factory=list)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_groups(inputs: list[list[int]], cont_lens: list[int]) -> list[Group]:
    """Group requests (in sorted order, so a document's choices are neighbours) while the shared prefix
    keeps at least half its length: a document's choices join, an unrelated document starting with the
    same few tokens does not. A prefix never reaches a position whose logits are needed."""
    groups: list[Group] = []
    for i in sorted(range(len(inputs)), key=lambda k: inputs[k]):
        limit = len(inputs[i]) - cont_lens[i]
        if groups and len(groups[-1].members) < MAX_GROUP:
            last = groups[-1]
            shared = min(last.prefix, limit, common_prefix(inputs[last.members[0]], inputs[i]))
            if shared >= 1 and 2 * shared >= last.prefix:
                last.prefix = shared
                last.members.append(i)
                continue
        groups.append(Group(limit, [i]))
    return groups


def pack(groups: list[Group], sequences: list[list[int]], cont_lens: list[int]) -> dict[str, Any]:
    """One packed row for a forward pass: each group's prefix, then each member's own tokens, with a mask
    that lets a member see its group's prefix and its own earlier tokens only (no padding anywhere)."""
    tokens, positions, segments, owners, in_prefix, keep, members = [], [], [], [], [], [], []
    for g, group in enumerate(groups):
        first = sequences[group.members[0]]
        tokens += first[: group.prefix]
        positions += range(group.prefix)
        segments += [g] * group.prefix
        owners += [g] * group.prefix
        in_prefix += [True] * group.prefix
    segment = len(groups)
    for g, group in enumerate(groups):
        for i in group.members:
            tail = sequences[i][group.prefix : -1]
            start = len(tokens)
            tokens += tail
            positions += range(group.prefix, group.prefix + len(tail))
            segments += [segment] * len(tail)
            owners += [g] * len(tail)
            in_prefix += [False] * len(tail)
            keep += range(start + len(tail) - cont_lens[i], start + len(tail))
            members.append(i)
            segment += 1
    seg, own, pre = torch.tensor(segments), torch.tensor(owners), torch.tensor(in_prefix)
    index = torch.arange(len(tokens))
    allowed = (index[None, :] <= index[:, None]) & (
        (seg[None, :] == seg[:, None]) | (pre[None, :] & (own[None, :] == own[:, None])))
    return {"input_ids": torch.tensor([tokens]), "position_ids": torch.tensor([positions]),
            "allowed": allowed, "keep": torch.tensor(keep), "members": members}


class SharedPrefixHFLM(HFLM):
    """HFLM with shared-prefix scoring of loglikelihood requests (causal models)."""

    pack_tokens = 384  # tokens per packed forward pass: attention over the packed row grows with its square

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        sequences = [(context + continuation)[-(self.max_length + 1) :] for _, context, continuation in requests]
        cont_lens = [len(continuation) for _, _, continuation in requests]
        groups = prefix_groups([s[:-1] for s in sequences], cont_lens)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        with tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="shared-prefix loglikelihood") as bar:
            for chunk in self.packs(groups, sequences):
                for i, answer in self.score_pack(pack(chunk, sequences, cont_lens), sequences, cont_lens).items():
                    results[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
                bar.update(sum(len(g.members) for g in chunk))
        return results  # type: ignore[return-value]

    def packs(self, groups: list[Group], sequences: list[list[int]]) -> Iterator[list[Group]]:
        """Groups in order, gathered until a pack holds `pack_tokens` tokens (a larger group goes alone)."""
        chunk: list[Group] = []
        size = 0
        for group in groups:
            tokens = group.prefix + sum(len(sequences[i]) - 1 - group.prefix for i in group.members)
            if chunk and size + tokens > self.pack_tokens:
                yield chunk
                chunk, size = [], 0
            chunk.append(group)
            size += tokens
        if chunk:
            yield chunk

    @torch.inference_mode()
    def score_pack(self, packed: dict[str, Any], sequences: list[list[int]],
                   cont_lens: list[int]) -> dict[int, tuple[float, bool]]:
        """One forward pass over a packed row; vocabulary-wide logits only where continuation tokens are predicted."""
        dtype = self.model.dtype
        mask = torch.zeros(packed["allowed"].shape, dtype=dtype)
        mask.masked_fill_(~packed["allowed"], torch.finfo(dtype).min)
        logits = self.model(input_ids=packed["input_ids"].to(self.device), attention_mask=mask[None, None].to(self.device),
                            position_ids=packed["position_ids"].to(self.device), use_cache=False,
                            logits_to_keep=packed["keep"].to(self.device)).logits[0]
        logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
        answers, row = {}, 0
        for i in packed["members"]:
            n = cont_lens[i]
            rows = logprobs[row : row + n]
            target = torch.tensor(sequences[i][-n:], device=rows.device)
            answers[i] = (float(rows.gather(1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all()))
            row += n
        return answers
