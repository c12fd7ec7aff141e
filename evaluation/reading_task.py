"""A small task a language model can only solve by reading its prompt, with the controls beside it.

The shopper searched a product type and viewed one item; the candidates are the searched type in several
colors (and brands), and the right one is set by the history, at a random place among them:

- ``viewed``: the viewed item itself (the history names it; the model has to find it among the
  candidates);
- ``color``: the searched type in the viewed item's color (the viewed item is of another type: the model
  has to carry the color over).

Every example has its own fresh ids, so an adapter cannot learn ids by heart, only how to read. The
examples are prompt parts for ``recommender.prompts.PromptRenderer`` (history events and candidate ids,
with the catalog rows they name), so the pipeline's own template, QLoRA training and ranker are the ones
measured. ``tests/test_packaged_lm.py`` fine-tunes the packaged SmolLM2 on ``viewed`` and checks that its
pick beats both controls; ``bench/llm_reads_history.py`` runs either task at any size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from recommender.prompts import PromptRenderer, target_response

COLORS = ("Black", "White", "Red", "Blue", "Green", "Yellow")
TYPES = ("Sneaker", "Dress", "Jacket", "Handbag", "Scarf", "Boot")
BRANDS = ("Alvora", "Brisk", "Cadenza", "Dunmore", "Elmtree", "Fjord")
TASKS = ("viewed", "color")
ID_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class ReadingExample:
    history: list[dict]  # prompt_inputs-like events, oldest first
    candidates: list[str]  # candidate ids in the order the prompt shows them
    target: str


@dataclass(frozen=True)
class ReadingTask:
    items: dict[str, dict]  # every id the examples name: item_id, title, category, color
    examples: list[ReadingExample]

    @property
    def titles(self) -> dict[str, str]:
        """Each id's title, as a ranker reads the catalog."""
        return {item_id: item["title"] for item_id, item in self.items.items()}

    def prompts(self, template_path: str | None = None) -> list[str]:
        """Each example's prompt, rendered by the pipeline's renderer (its default template unless
        ``template_path``); no token budget, the prompts are short."""
        kwargs = {"template_path": template_path} if template_path else {}
        renderer = PromptRenderer(lambda text: 0, catalog=self.items, **kwargs)
        return [renderer.render(e.history, e.candidates).prompt_text for e in self.examples]

    def answers(self) -> list[str]:
        """Each example's training answer, as the pipeline trains: the target's title, then its id."""
        return [target_response(e.target, self.items[e.target]["title"], e.candidates) for e in self.examples]


def reading_task(kind: str, n: int, seed: int, n_candidates: int = 4) -> ReadingTask:
    """``n`` examples of task ``kind`` (``viewed`` or ``color``), drawn with ``seed``."""
    if kind not in TASKS:
        raise ValueError(f"task {kind!r}: choose from {TASKS}")
    if not 2 <= n_candidates <= len(COLORS):
        raise ValueError(f"n_candidates={n_candidates}: between 2 and {len(COLORS)} (one color each)")
    rng = random.Random(seed)
    items: dict[str, dict] = {}

    def new_item(product_type: str, color: str) -> str:
        item_id = "B0" + "".join(rng.choice(ID_LETTERS) for _ in range(8))
        # a variant's title ends with its color, as the generator's titles do (warehouse.generator.titles)
        title = f"{rng.choice(BRANDS)} {product_type} for everyday wear {color}"
        items[item_id] = {"item_id": item_id, "title": title, "category": "Fashion", "color": color}
        return item_id

    examples = []
    for _ in range(n):
        wanted, other = rng.sample(TYPES, 2)
        colors = rng.sample(COLORS, n_candidates)
        candidates = [new_item(wanted, color) for color in colors]
        target = candidates[0]
        viewed = target if kind == "viewed" else new_item(other, colors[0])
        rng.shuffle(candidates)  # the right one at a random place
        history = [{"action": "search", "query": wanted.lower()}, {"action": "click", **items[viewed]}]
        examples.append(ReadingExample(history, candidates, target))
    return ReadingTask(items, examples)


@dataclass(frozen=True)
class PickAccuracy:
    model: float
    first: float  # control: the first candidate
    random: float  # control: a uniformly random candidate (seeded)
    n: int

    @property
    def margin(self) -> float:
        """How far the model's pick is above the better control."""
        return self.model - max(self.first, self.random)


def pick_accuracy(picks: Sequence[str], examples: Sequence[ReadingExample], seed: int = 0) -> PickAccuracy:
    """The share of ``examples`` whose target the model ``picks`` (one id each), beside the two controls
    over the same candidates."""
    if len(picks) != len(examples):
        raise ValueError(f"{len(picks)} picks for {len(examples)} examples")
    if not examples:
        raise ValueError("no examples to score")
    rng = random.Random(seed)
    n = len(examples)

    def share(chosen: Sequence[str]) -> float:
        return sum(c == e.target for c, e in zip(chosen, examples, strict=True)) / n

    return PickAccuracy(
        model=share(picks),
        first=share([e.candidates[0] for e in examples]),
        random=share([rng.choice(e.candidates) for e in examples]),
        n=n,
    )
