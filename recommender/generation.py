"""Generating the next purchase ``{<id>ID</id>,<title>TITLE</title>}`` with the fine-tuned model.

The base model is loaded in 4-bit NF4 exactly as QLoRA trained it, the LoRA adapter on top, and prompts
are answered in left-padded batches with the KV cache and the paper's sampling settings (§5.1). The
answers are parsed into item id and title. The ``generations`` asset runs this over a sample of the valid
and test prompts (``recommender.generation_table``); the serving API calls ``Recommender.recommend`` for
one request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from recommender.candidate_ranking import CandidateRanker, RankedCandidates
from recommender.constrained_decoding import ResponseGrammar
from recommender.generation_settings import RANKED_DECODINGS, GenerationSettings, check_decoding
from recommender.language_model import DEFAULT_MAX_DEQUANTIZED_BYTES, load_answering_model
from recommender.llm_output import parse_recommendation
from recommender.order_prior import fused_order, in_prompt_order
from recommender.prompts import first_places, render_response


@dataclass(frozen=True)
class GeneratedRecommendation:
    raw_text: str
    item_id: str | None
    title: str | None
    format_ok: bool
    id_in_catalog: bool
    n_new_tokens: int


@dataclass(frozen=True)
class GenerationRun:
    rows: list[GeneratedRecommendation]
    seconds: float
    # ranked decodings: each prompt's candidates, best first (None where it fell back to grounded)
    rankings: list[RankedCandidates | None] | None = None

    @property
    def prompts_per_second(self) -> float:
        return len(self.rows) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def format_ok_rate(self) -> float:
        return _rate(row.format_ok for row in self.rows)

    @property
    def id_in_catalog_rate(self) -> float:
        return _rate(row.id_in_catalog for row in self.rows)


class Recommender:
    """Answers recommendation prompts with a causal LM, constrained to the catalog by default."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        item_ids: Sequence[str],
        item_categories: Sequence[str | None] | None = None,
        settings: GenerationSettings | None = None,
        item_titles: Sequence[str | None] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or GenerationSettings()
        # the catalog titles bound a free title's length, or are the title itself with catalog_title
        # (see recommender.constrained_decoding)
        self.grammar = ResponseGrammar(
            tokenizer, item_ids, item_categories, item_titles, catalog_title=self.settings.catalog_title
        )
        self.ranker = CandidateRanker(model, tokenizer, self.grammar.titles)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def recommend(
        self, prompt: str, category: str | None = None, candidate_item_ids: Sequence[str] | None = None
    ) -> GeneratedRecommendation:
        """The answer to one prompt (the serving API's path)."""
        shortlists = [candidate_item_ids] if candidate_item_ids is not None else None
        return self.generate([prompt], [category], shortlists=shortlists, progress=False).rows[0]

    def generate(
        self,
        prompts: Sequence[str],
        categories: Sequence[str | None] | None = None,
        constrained: bool | None = None,
        progress: bool = True,
        shortlists: Sequence[Sequence[str] | None] | None = None,
    ) -> GenerationRun:
        """Answers in prompt order; ``constrained`` overrides the settings' switch for this call.

        ``shortlists`` are each prompt's candidate ids, used when ``restrict_to_candidates`` is on.
        """
        settings = self.settings
        constrained = settings.constrained if constrained is None else constrained
        for name, values in (("categories", categories), ("shortlists", shortlists)):
            if values is not None and len(values) != len(prompts):
                raise ValueError(f"{len(values)} {name} for {len(prompts)} prompts; pass one per prompt")
        lengths = [len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]]
        # longest first: similar lengths share a batch (less padding) and memory peaks at the start
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        answers: dict[int, GeneratedRecommendation] = {}
        torch.manual_seed(settings.seed)
        started = time.perf_counter()
        batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress):
            batch_categories = (
                [categories[i] for i in batch]
                if categories is not None and settings.restrict_to_category
                else None
            )
            batch_shortlists = (
                [shortlists[i] for i in batch]
                if shortlists is not None and settings.restrict_to_candidates
                else None
            )
            texts = self._generate_batch(
                [prompts[i] for i in batch], batch_categories, batch_shortlists, constrained
            )
            for i, (text, n_new) in zip(batch, texts, strict=True):
                parsed = parse_recommendation(text)
                answers[i] = GeneratedRecommendation(
                    raw_text=text,
                    item_id=parsed.item_id,
                    title=parsed.title,
                    format_ok=parsed.format_ok,
                    id_in_catalog=parsed.item_id in self.grammar.item_ids,
                    n_new_tokens=n_new,
                )
        seconds = time.perf_counter() - started
        return GenerationRun(rows=[answers[i] for i in range(len(prompts))], seconds=seconds)

    def rank(
        self,
        prompts: Sequence[str],
        categories: Sequence[str | None] | None,
        shortlists: Sequence[Sequence[str] | None],
        progress: bool = True,
        order_prior_weight: float = 0.0,
    ) -> GenerationRun:
        """Ranked decoding: each prompt's candidates scored under the model, the best one as the answer
        (its catalog title as the title), with the candidates' order as a prior of ``order_prior_weight``
        (``recommender.order_prior``; 0: the model alone); prompts without candidates are answered by
        grounded decoding.

        An infinite weight is the candidates' order alone, which no score can change, so the model
        scores nothing (each log-probability is NaN): the service answers a ``w = inf`` variant at the
        cost of its retrieval, not of a forward pass per candidate list."""
        started = time.perf_counter()
        with_candidates = [i for i, ids in enumerate(shortlists) if ids is not None and len(ids)]
        order_alone = math.isinf(order_prior_weight)
        ranked = (
            [in_given_order(shortlists[i]) for i in with_candidates]
            if order_alone
            else self.ranker.rank_many(
                [prompts[i] for i in with_candidates], [shortlists[i] for i in with_candidates], progress
            ).rankings
        )
        rows: dict[int, GeneratedRecommendation] = {}
        rankings: list[RankedCandidates | None] = [None] * len(prompts)
        for i, ranking in zip(with_candidates, ranked, strict=True):
            rankings[i] = ranking
            rows[i] = self._ranked_answer(ranking)
        rest = [i for i in range(len(prompts)) if i not in rows]
        if rest:
            fallback = self.generate(
                [prompts[i] for i in rest],
                [categories[i] for i in rest] if categories is not None else None,
                constrained=True,
                progress=progress,
            )
            rows.update(zip(rest, fallback.rows, strict=True))
        seconds = time.perf_counter() - started
        run = GenerationRun([rows[i] for i in range(len(prompts))], seconds, rankings)
        fuse = order_prior_weight and not order_alone
        return self.with_order_prior(run, shortlists, order_prior_weight) if fuse else run

    def with_order_prior(
        self, run: GenerationRun, shortlists: Sequence[Sequence[str] | None], weight: float
    ) -> GenerationRun:
        """A ranked ``run`` (the model's scores alone) re-ranked with the candidates' order of
        ``shortlists`` (the prompts' own) as a prior of ``weight``; each answer names its new best."""
        if run.rankings is None:
            raise ValueError("only a ranked run has candidate scores to fuse with the order prior")
        rows, rankings = list(run.rows), list(run.rankings)
        for i, ranking in enumerate(rankings):
            if ranking is None:
                continue
            candidates, log_probs = in_prompt_order(shortlists[i], ranking.item_ids, ranking.log_probs)
            scores = dict(zip(candidates, log_probs, strict=True))
            order = fused_order(candidates, log_probs, weight)
            rankings[i] = RankedCandidates(order, [scores[item_id] for item_id in order])
            rows[i] = self._ranked_answer(rankings[i])
        return GenerationRun(rows, run.seconds, rankings)

    def _ranked_answer(self, ranking: RankedCandidates) -> GeneratedRecommendation:
        best = ranking.item_ids[0]
        title = self.grammar.titles.get(best)
        return GeneratedRecommendation(
            raw_text=render_response(best, title or "", with_candidates=True),
            item_id=best,
            title=title,
            format_ok=True,
            id_in_catalog=best in self.grammar.item_ids,
            n_new_tokens=0,
        )

    def answer(
        self,
        prompts: Sequence[str],
        categories: Sequence[str | None] | None,
        shortlists: Sequence[Sequence[str] | None],
        decoding: str,
        progress: bool = True,
    ) -> GenerationRun:
        """Answer with one of the decodings (``generation_settings.DECODINGS``): ``ranked_prior`` and
        ``ranked`` rank the candidates, with the settings' order prior and without one; ``grounded``
        and ``free`` generate with and without the grammar."""
        if check_decoding(decoding) in RANKED_DECODINGS:
            weight = self.settings.order_prior_weight if decoding == "ranked_prior" else 0.0
            return self.rank(prompts, categories, shortlists, progress, weight)
        return self.generate(
            prompts, categories, constrained=decoding != "free", progress=progress, shortlists=shortlists
        )

    @torch.inference_mode()
    def _generate_batch(
        self,
        prompts: list[str],
        categories: list[str | None] | None,
        shortlists: list[Sequence[str] | None] | None,
        constrained: bool,
    ) -> list[tuple[str, int]]:
        settings = self.settings
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"  # new tokens must line up at the right edge of every row
        encoded = tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        prompt_length = encoded["input_ids"].shape[1]
        constraint = (
            self.grammar.constraint(
                prompt_length, settings.max_new_tokens, categories, len(prompts), shortlists
            )
            if constrained
            else None
        )
        output = self.model.generate(
            **encoded,
            max_new_tokens=settings.max_new_tokens,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            prefix_allowed_tokens_fn=constraint,
        )
        new_tokens = output[:, prompt_length:]
        finished = (new_tokens == tokenizer.pad_token_id) | (new_tokens == tokenizer.eos_token_id)
        n_new = (~finished).sum(dim=1).tolist()
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return list(zip(texts, n_new, strict=True))


def in_given_order(shortlist: Sequence[str]) -> RankedCandidates:
    """A shortlist's distinct candidates in its own order, unscored (the order prior at ``w = inf``)."""
    item_ids = list(first_places(shortlist))
    return RankedCandidates(item_ids, [math.nan] * len(item_ids))


def load_recommender(
    base_model: str,
    adapter_dir: Path,
    catalog: Sequence[tuple[str, str | None, str | None]],
    settings: GenerationSettings,
    max_dequantized_bytes: int = DEFAULT_MAX_DEQUANTIZED_BYTES,
) -> tuple[Recommender, int]:
    """The recommender of ``base_model`` with the adapter in ``adapter_dir`` over ``catalog`` rows (item id,
    category, title), and how many 4-bit layers it holds dequantized.

    On CPU the 4-bit weights are dequantized once and the adapter folded into them
    (``recommender.language_model.load_answering_model``); the generations asset and the service both
    load through here, so evaluated answers are the ones an application gets.
    """
    model, tokenizer, dequantized = load_answering_model(base_model, adapter_dir, max_dequantized_bytes)
    ids, categories, titles = ([row[i] for row in catalog] for i in range(3))
    return Recommender(model, tokenizer, ids, categories, settings, titles), dequantized


def _rate(flags: Any) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else float("nan")
