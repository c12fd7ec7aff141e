"""Recommendation prompts of arXiv 2410.11327 (Figure 3), rendered from an editable template file.

A prompt is the instruction, the user's history (search keywords and the products they clicked, carted
or bought, with their fashion attributes), the candidate products (id, title and attributes, so that the
model can read what each one is) and the response header. Training prompts are followed by the response:
``{<title>TITLE</title>,<id>ID</id>}`` after a prompt with candidates, the paper's
``{<id>ID</id>,<title>TITLE</title>}`` after one without. The default template writes one short line
per event and per candidate; ``templates/figure3_prompt.jinja`` is the paper's wording with every
product as JSON.

Training (``prompts`` asset) and the serving API render prompts with the same ``PromptRenderer``, so
the model sees one format online and offline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_TEMPLATE_PATH = TEMPLATES_DIR / "recommendation_prompt.jinja"
FIGURE3_TEMPLATE_PATH = TEMPLATES_DIR / "figure3_prompt.jinja"  # the paper's wording, products as JSON

# Figure 3 shows each product as JSON with exactly these keys, in this order.
PRODUCT_ATTRIBUTE_FIELDS = ("category", "brand", "color", "size", "season", "holiday", "occasion")
ITEM_ACTIONS = ("click", "add_to_cart", "purchase")
# the ``items`` columns a prompt can show for a product (a renderer's catalog rows)
CATALOG_COLUMNS = ("item_id", "title", *PRODUCT_ATTRIBUTE_FIELDS)

# The paper's answer (Figure 3), for prompts without candidates: the id, then the title.
RESPONSE_FORMAT = "{{<id>{item_id}</id>,<title>{title}</title>}}"
# The answer to a prompt with candidates names the chosen one by its title first, then its id. A model
# finds the product it will name by copying what it read: the title is the text a history line and a
# candidate line share, and the id follows the title in the candidate's line. Measured on the reading task
# (evaluation.reading_task, 96 training prompts, SmolLM2-135M): the fine-tuned model picked the right
# candidate 1.00 of the time with this answer, against 0.29 (chance: 0.25) when the answer opened with a
# label (A, B, ...) or the id, which the model has to look up backwards from the matching line.
CANDIDATE_RESPONSE_FORMAT = "{{<title>{title}</title>,<id>{item_id}</id>}}"
# ", then click product" and the like: only used to estimate how many events to drop, then checked
_ACTION_WORD_TOKENS = 3
_CONTENT_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class PromptVariant:
    """What a prompt shows; the ablations of the paper's Table 3 switch parts off."""

    name: str
    with_attributes: bool  # False: "w/o product attributes", products show id and title only
    with_query_memory: bool  # False: "w/o query-product memory", no candidates


PROMPT_VARIANTS: dict[str, PromptVariant] = {
    variant.name: variant
    for variant in (
        PromptVariant("full", with_attributes=True, with_query_memory=True),
        PromptVariant("no_attributes", with_attributes=False, with_query_memory=True),
        PromptVariant("no_query_memory", with_attributes=True, with_query_memory=False),
        # Table 3 row (7) removes both before the retrieval-side removal
        PromptVariant("no_attributes_no_query_memory", with_attributes=False, with_query_memory=False),
    )
}


def prompt_variant(name: str) -> PromptVariant:
    """The variant called ``name``, or an error that lists the known ones."""
    try:
        return PROMPT_VARIANTS[name]
    except KeyError:
        raise ValueError(
            f"unknown prompt variant {name!r}; expected one of {', '.join(PROMPT_VARIANTS)}"
        ) from None


@dataclass(frozen=True)
class PromptBudget:
    """How many tokens one training or inference sequence may hold."""

    # paper §5.1: "The maximum number of tokens for each interaction sequence is 1024."
    max_sequence_tokens: int = 1024
    # paper §5.1 generates at most 64 new tokens; reserving them keeps prompt + answer inside the sequence
    response_tokens: int = 64

    @property
    def prompt_tokens(self) -> int:
        return self.max_sequence_tokens - self.response_tokens

    def __post_init__(self) -> None:
        if self.prompt_tokens <= 0:
            raise ValueError(
                f"max_sequence_tokens={self.max_sequence_tokens} leaves no room for a prompt after "
                f"reserving response_tokens={self.response_tokens}"
            )


@dataclass(frozen=True)
class RenderedPrompt:
    prompt_text: str
    n_prompt_tokens: int
    n_history_events_kept: int
    n_history_events_dropped: int
    # False only when the latest search and the candidates alone exceed the budget: they are never cut
    fits_budget: bool


def first_places(item_ids: Sequence[str]) -> dict[str, int]:
    """Each distinct id of a candidate list and its first place, in list order: a repeated id is ranked
    once, at its first place."""
    places: dict[str, int] = {}
    for place, item_id in enumerate(item_ids):
        places.setdefault(str(item_id), place)
    return places


def render_response(item_id: str, title: str, with_candidates: bool = False) -> str:
    """The answer the model is trained to write: ``{<id>ID</id>,<title>TITLE</title>}`` (Figure 3), or,
    to a prompt that shows candidates, ``{<title>TITLE</title>,<id>ID</id>}``
    (``CANDIDATE_RESPONSE_FORMAT``)."""
    answer_format = CANDIDATE_RESPONSE_FORMAT if with_candidates else RESPONSE_FORMAT
    return answer_format.format(item_id=item_id, title=title)


def candidate_answers(item_ids: Sequence[str], titles: Mapping[str, str]) -> list[str]:
    """Each candidate's whole answer to a prompt with candidates, with its catalog title from ``titles``
    (an id without one spells an empty title): what the ranker scores and grounded decoding allows."""
    return [render_response(item_id, titles.get(item_id, ""), with_candidates=True) for item_id in item_ids]


def target_response(item_id: str, title: str, candidate_item_ids: Sequence[str] | None) -> str:
    """The training answer for a target, in the format of its prompt: with candidates or without."""
    return render_response(item_id, title, with_candidates=bool(candidate_item_ids))


def product_fields(event: Mapping[str, Any], with_attributes: bool) -> dict[str, str]:
    """One product as the prompt shows it: id, title and (unless ablated) its fashion attributes.

    Missing values become empty strings, as Figure 3 shows ``"holiday": ""``.
    """
    names = ("title", *PRODUCT_ATTRIBUTE_FIELDS) if with_attributes else ("title",)
    product = {"id": _text(event.get("item_id"))}
    product.update({name: _text(event.get(name)) for name in names})
    return product


def history_events(
    history: Sequence[Mapping[str, Any]] | None,
    latest_query: str | None = None,
    with_attributes: bool = True,
) -> list[dict[str, Any]]:
    """Template events from ``prompt_inputs.history`` structs (oldest first).

    ``latest_query`` is the last search before the target; when the history window is too short to
    still hold it, it is put back in front so the prompt never loses the user's current intent.
    """
    events: list[dict[str, Any]] = []
    for position, event in enumerate(history or ()):
        action = event.get("action")
        if action == "search":
            events.append({"action": "search", "query": _text(event.get("query"))})
        elif action in ITEM_ACTIONS:
            events.append({"action": action, "product": product_fields(event, with_attributes)})
        else:
            raise ValueError(
                f"history event {position} has action {action!r}; prompts show only search, "
                f"{', '.join(ITEM_ACTIONS)} (impressions are excluded by the user_sequences mart)"
            )
    if latest_query and not any(event["action"] == "search" for event in events):
        events.insert(0, {"action": "search", "query": latest_query})
    return events


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Count tokens the way the model receives a prompt (special tokens such as BOS included)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # the Rust tokenizer directly: same ids as tokenizer(text), without the Python wrapping per call
        return lambda text: len(backend.encode(text, add_special_tokens=True).ids)
    return lambda text: len(tokenizer(text)["input_ids"])


def load_prompt_template(path: str | Path = DEFAULT_TEMPLATE_PATH) -> jinja2.Template:
    """Compile the prompt template file; undefined variables fail loudly instead of rendering empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt template {path} does not exist")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # Figure 3 writes products as plain JSON (", " and ": " separators, no HTML escaping)
    environment.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    environment.filters["words"] = first_words
    return environment.from_string(path.read_text(encoding="utf-8"))


def first_words(text: Any, n: int) -> str:
    """``text``'s first ``n`` words (a title's head names the product; its tail is sizes and fits)."""
    return " ".join(str(text or "").split()[:n])


class PromptRenderer:
    """Renders prompts from the template and fits them into the token budget.

    Over budget, the oldest events go first; the latest search and the candidates always stay,
    because they carry the current intent and the query memory's hint. ``catalog`` maps an item id to its
    ``items`` row, so that each candidate shows its title and attributes; a candidate missing from it
    shows its id alone.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        budget: PromptBudget | None = None,
        template_path: str | Path = DEFAULT_TEMPLATE_PATH,
        catalog: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.count_tokens = count_tokens
        self.budget = budget or PromptBudget()
        self.template = load_prompt_template(template_path)
        self.catalog = catalog or {}
        self._content_tokens: dict[str, int] = {}

    def _event_tokens(self, event: Mapping[str, Any]) -> int:
        """Approximate tokens an event adds (its query or product JSON plus the action words)."""
        # the product's words as an upper bound of what any template writes for it (JSON adds its keys)
        content = (
            event["query"]
            if event["action"] == "search"
            else " ".join(value for value in event["product"].values() if value)
        )
        if content not in self._content_tokens:
            # products recur across users and a user's targets share their history: count each once
            if len(self._content_tokens) >= _CONTENT_CACHE_SIZE:
                self._content_tokens.clear()  # bounded memory on million-item catalogs
            self._content_tokens[content] = self.count_tokens(content)
        return self._content_tokens[content] + _ACTION_WORD_TOKENS

    def render_text(
        self,
        events: Sequence[Mapping[str, Any]],
        candidate_item_ids: Sequence[str] | None,
        with_attributes: bool = True,
    ) -> str:
        """The template applied to these events as they are (no budget fitting)."""
        if candidate_item_ids is None:
            return self.template.render(events=list(events), candidates=None, candidate_item_ids=None)
        ids = [str(item_id) for item_id in candidate_item_ids]
        products = [product_fields(self.catalog.get(i) or {"item_id": i}, with_attributes) for i in ids]
        return self.template.render(events=list(events), candidates=products, candidate_item_ids=ids)

    def render(
        self,
        history: Sequence[Mapping[str, Any]] | None,
        candidate_item_ids: Sequence[str] | None,
        variant: str = "full",
        latest_query: str | None = None,
    ) -> RenderedPrompt:
        """The prompt for one target: a ``prompt_inputs`` history, its candidates and a variant name."""
        chosen = prompt_variant(variant)
        events = history_events(history, latest_query, with_attributes=chosen.with_attributes)
        candidates = list(candidate_item_ids or ()) if chosen.with_query_memory else None

        searches = [i for i, event in enumerate(events) if event["action"] == "search"]
        protected = searches[-1] if searches else None
        droppable = [i for i in range(len(events)) if i != protected]  # oldest first

        def attempt(n_dropped: int) -> tuple[str, int, int]:
            dropped = set(droppable[:n_dropped])
            kept = [event for i, event in enumerate(events) if i not in dropped]
            text = self.render_text(kept, candidates, chosen.with_attributes)
            return text, self.count_tokens(text), len(kept)

        limit = self.budget.prompt_tokens
        best = attempt(0)
        n_dropped = 0
        if best[1] > limit and droppable:
            # Guess how many of the oldest events cover the excess from each event's own token count,
            # then step one event at a time, checking the real count, to the fewest that fit: usually
            # two or three tokenisations instead of a binary search's five or six.
            excess = best[1] - limit
            covered, n_dropped = 0, 0
            while n_dropped < len(droppable) and covered < excess:
                covered += self._event_tokens(events[droppable[n_dropped]])
                n_dropped += 1
            best = attempt(n_dropped)
            while best[1] > limit and n_dropped < len(droppable):
                n_dropped += 1
                best = attempt(n_dropped)
            while n_dropped > 1:
                fewer = attempt(n_dropped - 1)
                if fewer[1] > limit:
                    break
                best, n_dropped = fewer, n_dropped - 1
        text, n_tokens, n_kept = best
        return RenderedPrompt(
            prompt_text=text,
            n_prompt_tokens=n_tokens,
            n_history_events_kept=n_kept,
            n_history_events_dropped=n_dropped,
            fits_budget=n_tokens <= limit,
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value)
