"""Concurrent requests share ``Recommender.rank`` / ``generate`` calls, in batches as the generations asset
runs them.

The LLM answers one call at a time (generation reseeds torch's process-wide RNG, and on CPU two calls
only split the same cores). Instead of queueing requests one behind the other, the request thread that
finds the LLM free becomes the leader: it takes every prompt waiting for the same model (up to the
batch size), answers them in one left-padded ``generate`` call and hands each thread its answer. With
the small embedded models a step costs about the same for 1 or 16 prompts, so throughput under load
grows with the batch while a lone request is answered exactly as before. The ``decoding`` is the
generations asset's (``ranked`` by default: the prompt's candidates ranked under the model, then mixup
led by the ranking, as the evaluation scores it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from recommender.generation import GeneratedRecommendation, Recommender
from recommender.generation_settings import DEFAULT_DECODING


@dataclass
class _Job:
    recommender: Recommender
    prompt: str
    category: str | None
    shortlist: Sequence[str] | None
    decoding: str
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    finished: float = 0.0
    batch_size: int = 0
    answer: GeneratedRecommendation | None = None
    ranking: list[str] | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass(frozen=True)
class BatchedAnswer:
    answer: GeneratedRecommendation
    queue_ms: float  # waiting for the LLM to be free
    generation_ms: float  # the generate call this prompt was part of
    batch_size: int  # prompts answered together in that call
    ranking: list[str] | None = None  # ranked decoding: the candidates best first


class GenerationBatcher:
    """Collects prompts from request threads and answers them in shared ``generate`` calls."""

    def __init__(self, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self._pending: list[_Job] = []
        self._busy = False
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Prompts queued for the next batches."""
        with self._changed:
            return len(self._pending)

    def answer(
        self,
        recommender: Recommender,
        prompt: str,
        category: str | None,
        shortlist: Sequence[str] | None,
        decoding: str = DEFAULT_DECODING,
    ) -> BatchedAnswer:
        """The answer to one prompt; blocks while earlier batches run, or leads the next one."""
        job = _Job(recommender, prompt, category, shortlist, decoding)
        with self._changed:
            self._pending.append(job)
            while not job.done:
                if self._busy:
                    self._changed.wait()
                    continue
                # lead: the oldest waiting prompt's model and decoding, and every prompt waiting for both
                self._busy = True
                first = self._pending[0]
                batch = [
                    waiting
                    for waiting in self._pending
                    if waiting.recommender is first.recommender and waiting.decoding == first.decoding
                ]
                batch = batch[: self.max_batch]
                self._pending = [waiting for waiting in self._pending if waiting not in batch]
                self._changed.release()
                try:
                    self._run(batch)
                finally:
                    self._changed.acquire()
                    self._busy = False
                    self._changed.notify_all()
        if job.error is not None:
            raise job.error
        assert job.answer is not None
        return BatchedAnswer(
            answer=job.answer,
            queue_ms=(job.started - job.submitted) * 1000.0,
            generation_ms=(job.finished - job.started) * 1000.0,
            batch_size=job.batch_size,
            ranking=job.ranking,
        )

    @staticmethod
    def _run(batch: list[_Job]) -> None:
        started = time.perf_counter()
        recommender = batch[0].recommender
        prompts = [job.prompt for job in batch]
        categories = [job.category for job in batch]
        shortlists = [job.shortlist for job in batch]
        try:
            run = recommender.answer(prompts, categories, shortlists, batch[0].decoding, progress=False)
            answers: list[GeneratedRecommendation | None] = list(run.rows)
            rankings = [r.item_ids if r is not None else None for r in run.rankings or [None] * len(batch)]
            error = None
        except BaseException as failure:  # every waiting request must hear about it, not only the leader
            answers, rankings, error = [None] * len(batch), [None] * len(batch), failure
        finished = time.perf_counter()
        for job, answer, ranking in zip(batch, answers, rankings, strict=True):
            job.started, job.finished, job.batch_size = started, finished, len(batch)
            job.answer, job.ranking, job.error, job.done = answer, ranking, error, True
