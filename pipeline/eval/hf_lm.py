"""lm-eval's HF model, scoring a multiple-choice document's shared context once for all its choices.

lm-eval's HFLM evaluates every (context, choice) pair as a full sequence, so a HellaSwag context runs four
times. Here requests whose token sequences share a prefix (a document's choices; BoolQ questions on one
passage) are grouped: the prefix runs once per group (batched across groups), its KV cache is copied to
each member, and only the members' own tokens run after it, batched, with vocabulary-wide logits only at
the positions that predict continuation tokens. Tokenization, truncation and the answer (sum of log p,
greedy match) are HFLM's own, so each document's log-likelihoods match it to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


class SharedPrefixHFLM(HFLM):
    """HFLM with shared-prefix scoring of loglikelihood requests (causal models)."""

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        sequences = [(context + continuation)[-(self.max_length + 1) :] for _, context, continuation in requests]
        cont_lens = [len(continuation) for _, _, continuation in requests]
        groups = prefix_groups([s[:-1] for s in sequences], cont_lens)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        # A one-token context leaves nothing to share: lm-eval's own path scores those.
        alone = [i for g in groups if g.prefix < 1 for i in g.members]
        if alone:
            for i, answer in zip(alone, super()._loglikelihood_tokens([requests[i] for i in alone], True), strict=True):
                results[i] = answer
        shared = sorted((g for g in groups if g.prefix >= 1), key=lambda g: -g.prefix)
        batch = self.batch_size if isinstance(self.batch_size, int) else 8
        with tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="shared-prefix loglikelihood") as bar:
            bar.update(len(alone))
            for start in range(0, len(shared), batch):
                chunk = shared[start : start + batch]
                for i, answer in self.score_groups(chunk, sequences, cont_lens).items():
                    results[i] = answer
                    if requests[i][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
                bar.update(sum(len(g.members) for g in chunk))
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def score_groups(self, groups: list[Group], sequences: list[list[int]],
                     cont_lens: list[int]) -> dict[int, tuple[float, bool]]:
        """One pass over the groups' prefixes (right-padded), one over all members' own tokens (left-padded
        after the copied prefix KV; the gap between them masked)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(g.prefix for g in groups)
        prefix_ids = torch.full((len(groups), width), pad, dtype=torch.long)
        prefix_mask = torch.zeros((len(groups), width), dtype=torch.long)
        for row, g in enumerate(groups):
            prefix_ids[row, : g.prefix] = torch.tensor(sequences[g.members[0]][: g.prefix])
            prefix_mask[row, : g.prefix] = 1
        cache = self.model(input_ids=prefix_ids.to(self.device), attention_mask=prefix_mask.to(self.device),
                           use_cache=True, logits_to_keep=1).past_key_values

        members = [(row, i) for row, g in enumerate(groups) for i in g.members]
        owners = torch.tensor([row for row, _ in members])
        cache.reorder_cache(owners.to(self.device))
        tails = [sequences[i][groups[row].prefix : -1] for row, i in members]
        length = max(len(t) for t in tails)
        tail_ids = torch.full((len(members), length), pad, dtype=torch.long)
        tail_mask = torch.zeros((len(members), length), dtype=torch.long)
        positions = torch.zeros((len(members), length), dtype=torch.long)
        for k, ((row, _), tail) in enumerate(zip(members, tails, strict=True)):
            gap = length - len(tail)
            tail_ids[k, gap:] = torch.tensor(tail)
            tail_mask[k, gap:] = 1
            positions[k, gap:] = torch.arange(groups[row].prefix, groups[row].prefix + len(tail))
        keep = max(cont_lens[i] for _, i in members)
        logits = self.model(input_ids=tail_ids.to(self.device),
                            attention_mask=torch.cat([prefix_mask[owners], tail_mask], dim=1).to(self.device),
                            position_ids=positions.to(self.device), past_key_values=cache,
                            cache_position=torch.arange(width, width + length, device=self.device),
                            logits_to_keep=keep).logits
        logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
        answers = {}
        for k, (_, i) in enumerate(members):
            n = cont_lens[i]
            rows = logprobs[k, keep - n :]
            target = torch.tensor(sequences[i][-n:], device=rows.device)
            answers[i] = (float(rows.gather(1, target[:, None]).sum()), bool((rows.argmax(-1) == target).all()))
        return answers
