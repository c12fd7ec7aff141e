"""Retrieval with Mixup (arXiv 2410.11327 §4.4): from one LLM generation to the top-K items.

The LLM writes an item id and a title. Two lists are retrieved within the target category:

- list A (``source = "id"``): items nearest by cosine to the generated id's ID vector (CORE item table).
  The generated item itself has distance 0, so when it belongs to the category it comes first, also
  when other items share its vector (the ID model's single "cold" vector);
- list B (``source = "title"``): items nearest to the generated title's vector from the title encoder.

The top-K takes the first N items of A, then fills ranks N+1..K from B in order, skipping items already
taken. Without a usable id (not generated, or no ID vector) every item comes from B. Without a title,
the raw generation text is encoded instead, so a reply that missed the output format still retrieves by
what it says.

A ranking of the prompt's candidates (``ranked_item_ids``: the LLM's scores over every candidate, or a
control's order) leads the list: its best ``lead`` candidates of the category come first, in the
ranking's order (``source = "ranked"``), and the mixup of the best candidate (its id as the generated id,
its catalog title as the generated title) fills the ranks after them. With ``lead = 1`` this is the
paper's mixup of one generation whose answer is the best candidate.

:class:`MixupRetriever` answers one request with LanceDB (the service); :func:`mixup_batch` answers many
generations with loaded vector matrices (the evaluation). Both share :func:`mix` and rank items the same
way (see ``recommender.retrieval``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fashionrec.layout import ITEM_ID_VECTORS, ITEM_TITLE_VECTORS
from recommender.retrieval import Neighbor, VectorCatalog, item_vector, search_table

# encode(texts) -> unit float32 [n, dim] (recommender.encoders.TextEncoder.encode)
EncodeTexts = Callable[[Sequence[str]], np.ndarray]

Source = Literal["id", "title", "ranked"]


@dataclass(frozen=True)
class MixupConfig:
    """How many items to return and how many of them come from the ID list."""

    k: int = 10  # paper §5.1: Recall@N, NDCG@N with N = 10
    n: int = 1  # paper §4.4: "We set N = 1 for all our experiments"
    # a ranking's best candidates placed first (generations with ``ranked_item_ids`` only); chosen on valid
    # NDCG@10 (docs/evaluation.md, "Ranked candidates")
    lead: int = 3

    def __post_init__(self) -> None:
        # a lead past k fills the whole list with ranked candidates
        if self.k < 1 or not 0 <= self.n <= self.k or self.lead < 0:
            raise ValueError(
                f"mixup needs k >= 1, 0 <= n <= k and lead >= 0; got k={self.k}, n={self.n}, lead={self.lead}"
            )


@dataclass(frozen=True)
class RecommendedItem:
    """One item of a final top-K list: its 1-based rank, the list it came from and that list's score."""

    rank: int
    item_id: str
    source: Source
    score: float


def mix(
    id_list: Sequence[Neighbor], title_list: Sequence[Neighbor], config: MixupConfig
) -> list[RecommendedItem]:
    """The first ``n`` of the ID list, then the title list in order, without duplicates, up to ``k`` items."""
    chosen: list[tuple[Neighbor, Source]] = []
    seen: set[str] = set()
    for neighbors, source, limit in ((id_list, "id", config.n), (title_list, "title", config.k)):
        for neighbor in neighbors:
            if len(chosen) >= limit:
                break
            if neighbor.item_id not in seen:
                seen.add(neighbor.item_id)
                chosen.append((neighbor, source))
    return [
        RecommendedItem(rank, n.item_id, source, n.score) for rank, (n, source) in enumerate(chosen, start=1)
    ]


def lead_with_ranking(
    ranked_ids: Sequence[str] | None,
    category_ids: set[str],
    mixed: Sequence[RecommendedItem],
    config: MixupConfig,
) -> list[RecommendedItem]:
    """The best ``config.lead`` ranked candidates of the category, then ``mixed`` without them, up to k."""
    lead: list[str] = []
    for item_id in ranked_ids if ranked_ids is not None else ():
        if len(lead) >= config.lead:
            break
        if item_id in category_ids and item_id not in lead:
            lead.append(item_id)
    if not lead:
        return list(mixed)
    # the ranking's place as its score: 1 for the best, falling by rank (mixup's scores are cosines)
    chosen = [(item_id, "ranked", 1.0 / (1 + place)) for place, item_id in enumerate(lead)]
    chosen += [(m.item_id, m.source, m.score) for m in mixed if m.item_id not in lead]
    return [RecommendedItem(rank, i, src, sc) for rank, (i, src, sc) in enumerate(chosen[: config.k], 1)]


def id_list_with_generated_first(
    generated_id: str | None, category_ids: set[str] | None, neighbors: Sequence[Neighbor]
) -> list[Neighbor]:
    """List A: the generated item itself first (cosine 1 to its own vector) when it is in the category,
    then its nearest items."""
    if generated_id is None or category_ids is None or generated_id not in category_ids:
        return list(neighbors)
    return [Neighbor(generated_id, 1.0)] + [n for n in neighbors if n.item_id != generated_id]


def title_query_text(title: str | None, raw_text: str | None) -> str | None:
    """What to encode for list B: the parsed title, else the raw generation, else nothing."""
    for text in (title, raw_text):
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


class MixupRetriever:
    """Mixup retrieval for one request at a time, over the LanceDB vector tables."""

    def __init__(self, db, encode_titles: EncodeTexts, config: MixupConfig = MixupConfig()) -> None:
        self.id_table = db.open_table(ITEM_ID_VECTORS)
        self.title_table = db.open_table(ITEM_TITLE_VECTORS)
        self.encode_titles = encode_titles
        self.config = config

    def recommend(
        self, category: str, item_id: str | None, title: str | None, raw_text: str | None = None
    ) -> list[RecommendedItem]:
        """Top-K items of ``category`` for a generation's id and title (either may be missing)."""
        cfg = self.config
        id_list: list[Neighbor] = []
        usable_id = isinstance(item_id, str) and item_id != ""  # missing values may arrive as NaN
        found = item_vector(self.id_table, item_id) if usable_id and cfg.n > 0 else None
        if found is not None:
            vector, item_category = found
            # One extra neighbor: the generated item itself is among them when it is in the category.
            neighbors = search_table(self.id_table, vector, category, cfg.n + 1)
            in_category = {item_id} if item_category == category else None
            id_list = id_list_with_generated_first(item_id, in_category, neighbors)
        title_list: list[Neighbor] = []
        text = title_query_text(title, raw_text)
        if text is not None:
            query = self.encode_titles([text])[0]
            # n extra: up to n of them may repeat the ID list's items and be skipped.
            title_list = search_table(self.title_table, query, category, cfg.k + cfg.n)
        return mix(id_list, title_list, cfg)


def mixup_batch(
    generations: pd.DataFrame,
    id_vectors: VectorCatalog,
    title_vectors: VectorCatalog,
    encode_titles: EncodeTexts,
    config: MixupConfig = MixupConfig(),
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Mixup top-K lists for many generations with one matrix product per category and batch.

    ``generations`` has ``target_id``, ``category`` (the target category), ``item_id`` and ``title``
    (both nullable) and optionally ``raw_text`` and ``ranked_item_ids`` (a ranking of the prompt's
    candidates, best first, that leads the list: :func:`lead_with_ranking`). Returns one row per
    recommended item: ``target_id``, ``rank``, ``item_id``, ``source`` ('id' | 'title' | 'ranked') and
    ``score``; a generation with neither a usable id nor any text nor a ranking gets no rows.
    """
    needed = {"target_id", "category", "item_id", "title"}
    missing = needed - set(generations.columns)
    if missing:
        raise KeyError(
            f"generations frame lacks column(s) {sorted(missing)}; it has {list(generations.columns)}"
        )
    raw_texts = (
        generations["raw_text"] if "raw_text" in generations else pd.Series(None, index=generations.index)
    )
    texts = [title_query_text(t, r) for t, r in zip(generations["title"], raw_texts, strict=True)]
    rows: list[tuple[str, int, str, str, float]] = []
    # the text to encode travels as a column of Python objects; None marks "nothing to encode"
    frame = generations.reset_index(drop=True)
    frame["_text"] = pd.Series(texts, dtype=object)
    if "ranked_item_ids" not in frame:
        frame["ranked_item_ids"] = None
    for category, group in frame.groupby("category", sort=True):
        if category not in id_vectors.categories and category not in title_vectors.categories:
            continue
        id_matrix = id_vectors.categories.get(category)
        title_matrix = title_vectors.categories.get(category)
        id_members = set(id_matrix.item_ids.tolist()) if id_matrix is not None else set()
        category_ids = id_members | (
            set(title_matrix.item_ids.tolist()) if title_matrix is not None else set()
        )
        starts = range(0, len(group), batch_size)
        for start in tqdm(starts, desc=f"mixup {category}", unit="batch", disable=len(starts) < 2):
            chunk = group.iloc[start : start + batch_size]
            generated = [i if isinstance(i, str) else None for i in chunk["item_id"]]
            id_lists: list[list[Neighbor]] = [[] for _ in range(len(chunk))]
            if id_matrix is not None and config.n > 0:
                query, usable = id_vectors.vectors_of(generated)
                at = np.flatnonzero(usable)
                if at.size:
                    for j, neighbors in zip(at, id_matrix.top_k(query[at], config.n + 1), strict=True):
                        id_lists[j] = id_list_with_generated_first(generated[j], id_members, neighbors)
            title_lists: list[list[Neighbor]] = [[] for _ in range(len(chunk))]
            chunk_texts = chunk["_text"].tolist()
            with_text = [j for j, t in enumerate(chunk_texts) if isinstance(t, str)]
            if title_matrix is not None and with_text:
                encoded = encode_titles([chunk_texts[j] for j in with_text])
                for j, neighbors in zip(
                    with_text, title_matrix.top_k(encoded, config.k + config.n), strict=True
                ):
                    title_lists[j] = neighbors
            rankings = chunk["ranked_item_ids"].tolist()
            for target_id, id_list, title_list, ranking in zip(
                chunk["target_id"], id_lists, title_lists, rankings, strict=True
            ):
                mixed = mix(id_list, title_list, config)
                for item in lead_with_ranking(as_id_list(ranking), category_ids, mixed, config):
                    rows.append((target_id, item.rank, item.item_id, item.source, item.score))
    return pd.DataFrame(rows, columns=["target_id", "rank", "item_id", "source", "score"]).astype(
        {"rank": "int64", "score": "float64"}
    )


def as_id_list(value) -> list[str] | None:
    """A list-of-ids cell as a list of str: None (or a pandas null) for none, a list, or the numpy array
    that pandas reads from Arrow."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return [str(item_id) for item_id in value]
