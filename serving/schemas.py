"""Request and response models of the recommendation API (also what ``fashionrec recommend`` reads).

The request limits (events per session, query length, list length) are configuration, so the request
models are made per :class:`ServeLimits` by :func:`request_models`; pydantic then rejects a bad field
with a 422 naming it (``body.events.3.action``) and the OpenAPI schema shows the limits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# What a session may send: the raw-data contract's actions. Impressions are accepted and dropped, as the
# user_sequences mart drops them: prompts show searches, clicks, carts and purchases only.
Action = Literal["search", "impression", "click", "add_to_cart", "purchase"]
Source = Literal["ranked", "id", "title", "popularity"]
CategorySource = Literal["request", "latest_item", "generated", "none"]


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on one request; each can be set by an environment variable (``from_env``)."""

    max_events: int = 200  # FASHIONREC_SERVE_MAX_EVENTS; the prompt keeps the latest 50 (dbt var)
    max_query_chars: int = 200  # FASHIONREC_SERVE_MAX_QUERY_CHARS
    max_k: int = 100  # FASHIONREC_SERVE_MAX_K

    @classmethod
    def from_env(cls) -> ServeLimits:
        values = {}
        for name in ("max_events", "max_query_chars", "max_k"):
            variable = f"FASHIONREC_SERVE_{name.upper()}"
            raw = os.environ.get(variable)
            if raw is None:
                continue
            if not raw.strip().isdigit() or int(raw) < 1:
                raise ValueError(f"{variable}={raw!r} must be a whole number >= 1")
            values[name] = int(raw)
        return cls(**values)


class SessionEventBase(BaseModel):
    """One action of the live session, in the raw-data contract's terms."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Action
    ts: datetime = Field(description="When it happened; a time without zone is UTC.")
    query: str | None = Field(default=None, description="The search text (required for search).")
    item_id: str | None = Field(
        default=None, description="The product (required for every action but search)."
    )

    @model_validator(mode="after")
    def _fields_of_action(self) -> SessionEventBase:
        if self.action == "search" and not self.query:
            raise ValueError("a search event needs a non-empty 'query'")
        if self.action != "search" and not self.item_id:
            raise ValueError(f"a {self.action} event needs an 'item_id'")
        return self


class RecommendRequestBase(BaseModel):
    """A session's recent events (any order; they are sorted by ``ts``) and how many items to return."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    events: list[SessionEventBase] = Field(default_factory=list)
    k: int = Field(default=10, ge=1)
    category: str | None = Field(
        default=None,
        description="Recommend within this category. Default: the category of the latest clicked, carted or "
        "bought item; with searches only, the category of the item the LLM names.",
    )
    at: datetime | None = Field(
        default=None,
        description="Prediction time: the query memory shows only listings first shown before it "
        "(default: now).",
    )
    user_id: str | None = Field(default=None, description="Echoed back; the prompt never shows it.")
    include_prompt: bool = Field(default=False, description="Return the prompt text the LLM answered.")


def request_models(limits: ServeLimits) -> tuple[type[SessionEventBase], type[RecommendRequestBase]]:
    """The event and request models with ``limits`` as field constraints."""

    class SessionEvent(SessionEventBase):
        query: str | None = Field(
            default=None,
            max_length=limits.max_query_chars,
            description="The search text (required for search).",
        )

    class RecommendRequest(RecommendRequestBase):
        events: list[SessionEvent] = Field(default_factory=list, max_length=limits.max_events)
        k: int = Field(default=10, ge=1, le=limits.max_k, description="How many items to return.")

    return SessionEvent, RecommendRequest


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    title: str | None
    category: str | None
    score: float = Field(
        description=(
            "1 / (1 + place) for 'ranked', cosine similarity for 'id' and 'title', train purchases for "
            "'popularity'."
        )
    )
    source: Source = Field(
        description=(
            "'ranked': one of the best candidates as the LLM ranked them; 'id': nearest to the answer's id; "
            "'title': to the answer's title; 'popularity': the fallback."
        )
    )


class GeneratedAnswer(BaseModel):
    text: str = Field(description="What the LLM wrote: {<id>ID</id>,<title>TITLE</title>}.")
    item_id: str | None
    title: str | None
    format_ok: bool
    id_in_catalog: bool


class StageTimings(BaseModel):
    """Milliseconds per stage of this request."""

    query_memory: float = 0.0  # encode the latest query, nearest stored queries, their products
    prompt: float = 0.0  # render the template and fit it into the token budget
    queue: float = 0.0  # waiting for the LLM while other requests use it
    generation: float = 0.0  # the LLM's answer (constrained decoding)
    retrieval: float = 0.0  # title encoding and the mixup of the ID and title lists
    total: float = 0.0


class RecommendResponse(BaseModel):
    user_id: str | None
    items: list[RecommendedItem]
    category: str | None
    category_source: CategorySource
    fallback: Literal["popularity"] | None = Field(
        description="Set when the list is train popularity instead of the LLM (empty session, no answer)."
    )
    generated: GeneratedAnswer | None
    latest_query: str | None
    query_memory_candidates: list[str]
    history_events: int = Field(description="Events the prompt shows (after the history window and budget).")
    prompt_tokens: int
    prompt_text: str | None = None
    llm_batch_size: int = Field(default=0, description="Prompts answered in the same generate call.")
    warnings: list[str]
    timings_ms: StageTimings
    eval_run_id: str | None
    adapter_sha256: str
    artifacts_loaded_at: datetime = Field(description="Identifies the snapshot that answered (see /health).")


class ItemDetails(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    brand: str | None
    color: str | None
    size: str | None
    season: str | None
    holiday: str | None
    occasion: str | None
    train_purchases: int


class ArtifactInfo(BaseModel):
    loaded_at: datetime
    base_model: str
    adapter_dir: str
    adapter_sha256: str
    adapter_modified_at: datetime
    lancedb_versions: dict[str, int]
    eval_run_id: str | None
    variant: str
    max_sequence_tokens: int
    max_history_events: int
    dequantized_layers: int
    order_prior_weight: str | None = Field(
        description="The ranked_prior decoding's weight of the candidates' order, as the generations asset "
        "chose it on valid ('inf': the order alone); null: none chosen yet, the model ranks alone."
    )
    items: int
    categories: list[str]


class Health(BaseModel):
    status: Literal["ok", "loading"]
    reloads: int = Field(description="Snapshots swapped in after the first load.")
    artifacts: ArtifactInfo | None
    limits: dict[str, int]
    device: str | None = Field(description="Where the LLM runs (cpu, cuda:0).")
    torch_threads: int


class ReloadResult(BaseModel):
    seconds: float
    previous: ArtifactInfo | None
    current: ArtifactInfo
