"""Ranking a prompt's candidates under the language model: every candidate scored, not one sampled.

An answer to a prompt with candidates is ``{<title>TITLE</title>,<id>ID</id>}`` (``recommender.prompts``).
A candidate's score is the log-probability the model gives to that candidate's whole answer right after
the prompt: the exact likelihood of naming it, in the same tokenisation as training (prompt and response
tokenised apart). The title comes first because that is how a model finds a product it read in the
history: it copies the text. The prompt is read once: its key/value cache, plus the answer tokens every
candidate shares, is computed in one forward pass and repeated for a batch that holds each candidate's
own tokens, so ranking eight candidates costs about one prefill and one short batched pass.
transformers' ``generate`` scores only the tokens it samples, and its constrained decoding picks one
answer; no library scores a fixed set of continuations over one shared cache, hence this module.

The ``generations`` asset's ``ranked`` decoding and the service's ranking both call
:meth:`CandidateRanker.rank`; mixup then takes the ranked list (``recommender.mixup``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from recommender.prompts import candidate_answers, first_places


@dataclass(frozen=True)
class RankedCandidates:
    item_ids: list[str]  # best first
    # each one's answer log-probability under the model, in the same order: descending unless the
    # candidates' order was fused in as a prior (recommender.generation.Recommender.with_order_prior)
    log_probs: list[float]


@dataclass(frozen=True)
class RankingRun:
    rankings: list[RankedCandidates]
    seconds: float
    prompt_tokens: int  # summed over the prompts

    @property
    def prompts_per_second(self) -> float:
        return len(self.rankings) / self.seconds if self.seconds > 0 else float("nan")


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all ``sequences`` share, leaving each at least one token of its own."""
    shortest = min(len(sequence) for sequence in sequences)
    n = 0
    while n < shortest - 1 and all(sequence[n] == sequences[0][n] for sequence in sequences):
        n += 1
    return n


class CandidateRanker:
    """Scores the candidates of a prompt with a causal LM (any Hugging Face model, adapter or not);
    ``titles`` maps an id to the catalog title its answer spells (a missing one spells an empty title)."""

    def __init__(self, model: Any, tokenizer: Any, titles: Mapping[str, str]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.titles = titles
        # transformers' causal LMs take `logits_to_keep` since 4.45; an older model class computes all
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def answer_tokens(self, item_ids: Sequence[str]) -> list[list[int]]:
        """Each candidate's whole answer, tokenised as the training response is."""
        return self.tokenizer(candidate_answers(item_ids, self.titles), add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def log_probs(self, prompt: str, item_ids: Sequence[str]) -> list[float]:
        """The answer log-probability of each of the prompt's candidates ``item_ids`` (in their order)."""
        if not item_ids:
            return []
        answers = self.answer_tokens(item_ids)
        shared = shared_prefix_length(answers)
        prompt_ids = self.tokenizer(prompt)["input_ids"]
        prefix = [*prompt_ids, *answers[0][:shared]]
        device = self.device
        # only the last prompt position and the shared answer tokens predict scored tokens: the vocabulary
        # projection of the other ~500 positions would cost a tenth of the prefill for nothing
        keep = {"logits_to_keep": shared + 1} if self.keeps_logits else {}
        out = self.model(input_ids=torch.tensor([prefix], device=device), use_cache=True, **keep)
        steps = torch.log_softmax(out.logits[0, -(shared + 1) :].float(), dim=-1)
        first = steps[-1]
        # the answer tokens every candidate shares count the same for each: the scores stay exact
        common = float(steps[:-1].gather(1, torch.tensor(answers[0][:shared], device=device)[:, None]).sum())
        rests = [answer[shared:] for answer in answers]
        width = max(len(rest) for rest in rests)
        pad = self.tokenizer.pad_token_id or 0
        batch = torch.full((len(rests), width), pad, dtype=torch.long, device=device)
        for row, rest in enumerate(rests):
            batch[row, : len(rest)] = torch.tensor(rest, device=device)
        scores = first[batch[:, 0]] + common
        if width > 1:
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(rests))
            positions = torch.arange(len(prefix), len(prefix) + width, device=device).expand(len(rests), -1)
            mask = torch.ones((len(rests), len(prefix) + width), dtype=torch.long, device=device)
            follow = self.model(
                input_ids=batch, attention_mask=mask, position_ids=positions, past_key_values=cache
            )
            # token j + 1 of a rest is predicted at position j; right padding is never counted
            following = torch.log_softmax(follow.logits[:, :-1].float(), dim=-1)
            picked = following.gather(2, batch[:, 1:].unsqueeze(-1)).squeeze(-1)
            lengths = torch.tensor([len(rest) for rest in rests], device=device)
            counted = torch.arange(1, width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
            scores = scores + (picked * counted).sum(dim=1)
        return scores.tolist()

    def rank(self, prompt: str, item_ids: Sequence[str]) -> RankedCandidates:
        """``item_ids``, the candidates in the order the prompt shows them, best first by their answer
        log-probability (ties keep the input order; a repeated id is scored once)."""
        first_place = first_places(item_ids)
        distinct = list(first_place)
        scores = dict(zip(distinct, self.log_probs(prompt, distinct), strict=True))
        ranked = sorted(distinct, key=lambda item_id: (-scores[item_id], first_place[item_id]))
        return RankedCandidates(ranked, [scores[item_id] for item_id in ranked])

    def rank_many(
        self, prompts: Sequence[str], candidates: Sequence[Sequence[str] | None], progress: bool = True
    ) -> RankingRun:
        """:meth:`rank` for each prompt; a prompt without candidates gets an empty ranking."""
        if len(candidates) != len(prompts):
            raise ValueError(f"{len(candidates)} candidate lists for {len(prompts)} prompts; pass one each")
        started = time.perf_counter()
        rankings = [
            self.rank(prompt, ids or [])
            for prompt, ids in tqdm(
                list(zip(prompts, candidates, strict=True)),
                desc="ranking",
                unit="prompt",
                disable=not progress,
            )
        ]
        tokens = sum(len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]) if prompts else 0
        return RankingRun(rankings, time.perf_counter() - started, tokens)
