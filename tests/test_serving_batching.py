"""Concurrent requests share generate calls: the batcher's queueing, batching and failure handling."""

from __future__ import annotations

import threading
import time

import pytest

from recommender.candidate_ranking import RankedCandidates
from recommender.generation import GeneratedRecommendation, GenerationRun
from recommender.generation_settings import DEFAULT_DECODING
from serving.batching import GenerationBatcher


class StubRecommender:
    """Answers with the prompt text; the first call waits until released, so others queue behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.first_started, self.release = threading.Event(), threading.Event()
        self.fail = fail

    def answer(self, prompts, categories, shortlists, decoding, progress):
        """Ranked decoding (the default): each prompt's answer and a ranking that names it."""
        assert decoding == DEFAULT_DECODING
        self.calls.append(list(prompts))
        if len(self.calls) == 1:
            self.first_started.set()
            self.release.wait(30)
        if self.fail:
            raise RuntimeError("model failed")
        rows = [GeneratedRecommendation(p, p, p, True, True, 1) for p in prompts]
        return GenerationRun(rows=rows, seconds=0.0, rankings=[RankedCandidates([p], [0.0]) for p in prompts])


@pytest.mark.parametrize("fail", [False, True])
def test_waiting_prompts_are_answered_together(fail):
    batcher, model = GenerationBatcher(max_batch=2), StubRecommender(fail)
    results: dict[str, object] = {}

    def ask(prompt: str) -> None:
        try:
            results[prompt] = batcher.answer(model, prompt, None, None)
        except RuntimeError as error:
            results[prompt] = error

    first = threading.Thread(target=ask, args=("a",))
    first.start()
    assert model.first_started.wait(30)
    others = []
    for n_waiting, prompt in enumerate("bcd", start=1):  # one at a time, so they queue in this order
        others.append(threading.Thread(target=ask, args=(prompt,)))
        others[-1].start()
        while batcher.waiting < n_waiting:
            time.sleep(0.005)
    model.release.set()
    for thread in [first, *others]:
        thread.join(30)
    assert model.calls == [["a"], ["b", "c"], ["d"]]
    if fail:
        assert all(str(results[p]) == "model failed" for p in "abcd")
    else:
        assert {p: (r.answer.item_id, r.batch_size) for p, r in results.items()} == {
            "a": ("a", 1),
            "b": ("b", 2),
            "c": ("c", 2),
            "d": ("d", 1),
        }
        assert all(r.ranking == [p] for p, r in results.items())  # each request gets its own ranking


def test_prompts_for_different_snapshots_never_share_a_call():
    """During a reload, requests on the old and the new model wait side by side; each batch is one model's."""
    batcher, old, new = GenerationBatcher(max_batch=4), StubRecommender(), StubRecommender()
    new.release.set()
    threads = [threading.Thread(target=batcher.answer, args=(old, "a", None, None))]
    threads[0].start()
    assert old.first_started.wait(30)
    for n_waiting, (model, prompt) in enumerate([(old, "b"), (new, "c"), (old, "d")], start=1):
        threads.append(threading.Thread(target=batcher.answer, args=(model, prompt, None, None)))
        threads[-1].start()
        while batcher.waiting < n_waiting:
            time.sleep(0.005)
    old.release.set()
    for thread in threads:
        thread.join(30)
    assert (old.calls, new.calls) == ([["a"], ["b", "d"]], [["c"]])
