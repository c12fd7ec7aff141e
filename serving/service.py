"""Online recommendations for one live session, with the evaluation's prompt, LLM and mixup code.

A request goes through the stages the offline pipeline runs for a ``prompt_inputs`` row:

1. the events become a ``prompt_inputs``-style history (latest ``max_history_events``, impressions and
   unknown items dropped with a warning) and the latest search query;
2. query memory: the query's nearest stored queries and their top products (``QueryMemory.nearest`` and
   ``candidates``, the code that computed ``prompt_candidates``), visible before the prediction time;
3. prompt: ``PromptRenderer.render`` with the generations asset's variant and token budget;
4. generation: ``Recommender.recommend`` (constrained to the catalog and the category, paper §5.1 sampling);
5. retrieval: ``mixup_batch`` over the in-memory ID and title matrices, as the evaluation ranks.

The category: the evaluation ranks within the target's category, which a live session does not know.
The client may name it; otherwise it is the category of the latest clicked, carted or bought item (the
shopping mission of C2: sessions compare variants of one family before buying); with searches only, the
LLM answers over the whole catalog and the category of the item it names is used.

Every request reads the current :class:`~serving.artifacts.ArtifactSnapshot` reference once and uses
that snapshot to the end, so :meth:`RecommendationService.reload` can build a new snapshot off to the
side and swap it in while requests are in flight.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import torch

from fashionrec.settings import Paths, preset_name
from recommender.generation import GeneratedRecommendation, GenerationSettings
from recommender.generation_settings import DEFAULT_DECODING, check_decoding
from recommender.mixup import MixupConfig, mixup_batch
from recommender.prompts import PROMPT_VARIANTS
from recommender.query_memory import normalize_query, to_utc_ns
from serving.artifacts import ArtifactSnapshot, ArtifactsUnavailable, LoadOptions, load_artifacts
from serving.batching import GenerationBatcher
from serving.schemas import (
    ArtifactInfo,
    GeneratedAnswer,
    Health,
    ItemDetails,
    RecommendedItem,
    RecommendRequestBase,
    RecommendResponse,
    ReloadResult,
    ServeLimits,
    StageTimings,
)
from serving.session import as_utc, session_history

MIXUP_N = 1  # paper §4.4: the first N = 1 item from the ID list, the rest from the title list


@dataclass(frozen=True)
class ServiceSettings:
    """Request limits and what to load; ``from_env`` reads the ``FASHIONREC_SERVE_*`` variables."""

    limits: ServeLimits
    load: LoadOptions
    # torch intra-op threads of a serving process (``fashionrec serve`` sets them): one request's tensors
    # are tiny, so more threads only add synchronisation, and while a pipeline run keeps the cores busy
    # OpenMP's spin-waiting made every stage 5x slower in bench/serve.py; requests still run in parallel
    # in the server's thread pool
    torch_threads: int = 1
    # prompts of concurrent requests answered in one generate call (serving.batching); the generations
    # asset's batch size by default, 1 answers one request at a time
    llm_batch: int = GenerationSettings.batch_size

    @classmethod
    def from_env(cls) -> ServiceSettings:
        numbers = {}
        for variable in (
            "FASHIONREC_SERVE_MAX_SEQUENCE_TOKENS",
            "FASHIONREC_SERVE_TORCH_THREADS",
            "FASHIONREC_SERVE_LLM_BATCH",
        ):
            raw = os.environ.get(variable)
            if raw is not None and (not raw.strip().isdigit() or int(raw) < 1):
                raise ValueError(f"{variable}={raw!r} must be a whole number >= 1")
            numbers[variable] = int(raw) if raw is not None else None
        tokens = numbers["FASHIONREC_SERVE_MAX_SEQUENCE_TOKENS"]
        variant = os.environ.get("FASHIONREC_SERVE_VARIANT", "full")
        decoding = check_decoding(os.environ.get("FASHIONREC_SERVE_DECODING", DEFAULT_DECODING))
        if variant not in PROMPT_VARIANTS:
            raise ValueError(
                f"FASHIONREC_SERVE_VARIANT={variant!r}; expected one of {', '.join(PROMPT_VARIANTS)}"
            )
        load = LoadOptions(
            preset=preset_name(),
            variant=variant,
            max_sequence_tokens=tokens,
            decoding=decoding,
        )
        return cls(
            limits=ServeLimits.from_env(),
            load=load,
            torch_threads=numbers["FASHIONREC_SERVE_TORCH_THREADS"] or cls.torch_threads,
            llm_batch=numbers["FASHIONREC_SERVE_LLM_BATCH"] or cls.llm_batch,
        )


class RequestFieldError(ValueError):
    """A request field that passed the schema but not the loaded catalog (e.g. an unknown category)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ServiceNotReady(RuntimeError):
    """No snapshot has been loaded yet."""


class ReloadInProgress(RuntimeError):
    """Another reload is building a snapshot; one at a time keeps memory bounded."""


def artifact_info(snapshot: ArtifactSnapshot) -> ArtifactInfo:
    return ArtifactInfo(
        **asdict(snapshot.versions),
        items=len(snapshot.catalog.items),
        categories=list(snapshot.catalog.categories),
    )


class RecommendationService:
    """Answers sessions from the current snapshot; ``reload`` swaps in a new one atomically."""

    def __init__(
        self,
        paths: Paths,
        settings: ServiceSettings,
        loader: Callable[[Paths, LoadOptions], ArtifactSnapshot] = load_artifacts,
    ) -> None:
        self.paths = paths
        self.settings = settings
        self._loader = loader
        self._snapshot: ArtifactSnapshot | None = None
        self._reload_lock = threading.Lock()
        self._batcher = GenerationBatcher(settings.llm_batch)  # one LLM call at a time, shared by requests
        self.loads = 0  # snapshots loaded so far; every one after the first is a reload

    @property
    def snapshot(self) -> ArtifactSnapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise ServiceNotReady("the service is still loading its artifacts; try again shortly")
        return snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    def reload(self) -> ReloadResult:
        """Load every artifact anew and swap the snapshot; on failure the current one stays."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("a reload is already running; wait for it to finish")
        try:
            started = time.perf_counter()
            previous = self._snapshot
            try:
                fresh = self._loader(self.paths, self.settings.load)
            except ArtifactsUnavailable:
                raise
            except (OSError, ValueError, RuntimeError) as error:  # e.g. a file being rewritten by a run
                raise ArtifactsUnavailable(f"loading failed: {type(error).__name__}: {error}") from error
            self._snapshot = fresh  # one reference swap: requests in flight keep the snapshot they read
            self.loads += 1
            return ReloadResult(
                seconds=round(time.perf_counter() - started, 3),
                previous=artifact_info(previous) if previous is not None else None,
                current=artifact_info(fresh),
            )
        finally:
            self._reload_lock.release()

    def health(self) -> Health:
        snapshot = self._snapshot
        return Health(
            status="ok" if snapshot is not None else "loading",
            reloads=max(self.loads - 1, 0),
            artifacts=artifact_info(snapshot) if snapshot is not None else None,
            limits=asdict(self.settings.limits),
            device=str(snapshot.recommender.device) if snapshot is not None else None,
            torch_threads=torch.get_num_threads(),
        )

    def item(self, item_id: str) -> ItemDetails | None:
        catalog = self.snapshot.catalog
        item = catalog.items.get(item_id)
        if item is None:
            return None
        return ItemDetails(**item, train_purchases=catalog.train_purchases.get(item_id, 0))

    def recommend(self, request: RecommendRequestBase) -> RecommendResponse:
        """The top-``k`` items for one session (see the module docstring for the stages)."""
        started = time.perf_counter()
        snapshot = self.snapshot  # this request's snapshot, whatever reloads happen meanwhile
        catalog = snapshot.catalog
        if request.category is not None and request.category not in catalog.categories:
            raise RequestFieldError(
                "category",
                f"unknown category {request.category!r}; expected one of {', '.join(catalog.categories)}",
            )
        session = session_history(request.events, catalog.items, snapshot.versions.max_history_events)
        warnings = list(session.warnings)
        category = request.category or session.latest_item_category
        category_source = "request" if request.category else ("latest_item" if category else "none")
        timings = StageTimings()
        result: dict[str, Any] = {
            "user_id": request.user_id,
            "latest_query": session.latest_query,
            "query_memory_candidates": [],
            "history_events": 0,
            "prompt_tokens": 0,
            "generated": None,
            "eval_run_id": snapshot.versions.eval_run_id,
            "adapter_sha256": snapshot.versions.adapter_sha256,
            "artifacts_loaded_at": snapshot.versions.loaded_at,
        }
        if not session.history:
            warnings.append(
                "the session has no usable events: the list is the most purchased items (train split) of "
                + (f"category {category!r}" if category else "the whole catalog")
            )
            items = self._popular(snapshot, category, request.k)
            return self._response(result, items, category, category_source, warnings, timings, started, True)

        clock = time.perf_counter()
        variant = PROMPT_VARIANTS[snapshot.versions.variant]
        candidates = (
            self._memory_candidates(snapshot, session.latest_query, request.at)
            if variant.with_query_memory
            else []
        )
        timings.query_memory = _ms_since(clock)

        clock = time.perf_counter()
        rendered = snapshot.renderer.render(session.history, candidates, variant.name, session.latest_query)
        timings.prompt = _ms_since(clock)
        if not rendered.fits_budget:
            warnings.append(
                f"the latest search and candidates alone take {rendered.n_prompt_tokens} tokens, over the "
                f"prompt budget of {snapshot.renderer.budget.prompt_tokens}"
            )

        batched = self._batcher.answer(
            snapshot.recommender, rendered.prompt_text, category, candidates, self.settings.load.decoding
        )
        answer = batched.answer
        timings.queue, timings.generation = round(batched.queue_ms, 3), round(batched.generation_ms, 3)
        if category is None and answer.item_id in catalog.items:
            category, category_source = catalog.items[answer.item_id]["category"], "generated"

        clock = time.perf_counter()
        items = (
            self._mixup(snapshot, category, answer, batched.ranking, request.k)
            if category is not None
            else []
        )
        timings.retrieval = _ms_since(clock)
        fallback = not items
        if fallback:
            warnings.append(
                "the LLM's answer retrieved nothing (no usable id or title): the list is the most purchased "
                "items (train split) of " + (f"category {category!r}" if category else "the whole catalog")
            )
            items = self._popular(snapshot, category, request.k)
        result.update(
            query_memory_candidates=candidates,
            history_events=rendered.n_history_events_kept,
            prompt_tokens=rendered.n_prompt_tokens,
            prompt_text=rendered.prompt_text if request.include_prompt else None,
            llm_batch_size=batched.batch_size,
            generated=GeneratedAnswer(
                text=answer.raw_text,
                item_id=answer.item_id,
                title=answer.title,
                format_ok=answer.format_ok,
                id_in_catalog=answer.id_in_catalog,
            ),
        )
        return self._response(result, items, category, category_source, warnings, timings, started, fallback)

    @staticmethod
    def _response(
        result: dict[str, Any],
        items: list[RecommendedItem],
        category: str | None,
        category_source: str,
        warnings: list[str],
        timings: StageTimings,
        started: float,
        fallback: bool,
    ) -> RecommendResponse:
        timings.total = _ms_since(started)
        return RecommendResponse(
            **result,
            items=items,
            category=category,
            category_source=category_source,
            warnings=warnings,
            timings_ms=timings,
            fallback="popularity" if fallback else None,
        )

    @staticmethod
    def _memory_candidates(snapshot: ArtifactSnapshot, query: str | None, at: datetime | None) -> list[str]:
        """The prompt_candidates computation for one query: products of its nearest past searches that
        were first shown before ``at`` (default: now)."""
        norm = normalize_query(query)
        memory = snapshot.memory
        if norm is None or len(memory) == 0:
            return []
        cutoff = to_utc_ns([as_utc(at) if at is not None else datetime.now(UTC)])
        vectors = snapshot.query_encoder.encode([norm])
        neighbours, _ = memory.nearest(vectors, cutoff, snapshot.memory_settings.neighbours)
        return memory.candidates(neighbours, cutoff, snapshot.memory_settings.items_per_query)[0]

    @staticmethod
    def _mixup(
        snapshot: ArtifactSnapshot,
        category: str,
        answer: GeneratedRecommendation,
        ranking: list[str] | None,
        k: int,
    ) -> list[RecommendedItem]:
        """The evaluation's mixup retrieval (``mixup_batch``) for this one answer, led by the ranked
        candidates when the LLM ranked them."""
        generation = pd.DataFrame(
            {
                "target_id": ["session"],
                "category": [category],
                "item_id": pd.Series([answer.item_id], dtype=object),
                "title": pd.Series([answer.title], dtype=object),
                "raw_text": [answer.raw_text],
                "ranked_item_ids": pd.Series([ranking], dtype=object),
            }
        )
        lists = mixup_batch(
            generation,
            snapshot.id_vectors,
            snapshot.title_vectors,
            snapshot.title_encoder.encode,
            MixupConfig(k=k, n=min(MIXUP_N, k)),
        )
        items = snapshot.catalog.items
        return [
            RecommendedItem(
                rank=int(row.rank),
                item_id=row.item_id,
                title=items.get(row.item_id, {}).get("title"),
                category=items.get(row.item_id, {}).get("category"),
                score=float(row.score),
                source=row.source,
            )
            for row in lists.sort_values("rank").itertuples(index=False)
        ]

    @staticmethod
    def _popular(snapshot: ArtifactSnapshot, category: str | None, k: int) -> list[RecommendedItem]:
        catalog = snapshot.catalog
        chosen = catalog.popular[category][:k]
        return [
            RecommendedItem(
                rank=rank,
                item_id=item_id,
                title=catalog.items[item_id]["title"],
                category=catalog.items[item_id]["category"],
                score=float(catalog.train_purchases.get(item_id, 0)),
                source="popularity",
            )
            for rank, item_id in enumerate(chosen, start=1)
        ]


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)
