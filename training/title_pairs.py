"""What the title encoder learns from and is measured on (arXiv 2410.11327 §4.4): (query, purchased title)
pairs, the two hard negatives of each pair, and query -> purchased-title Recall@k.

Logs without searches (a purchase-only export) have no such pairs. The next best pairs they do have are
(an earlier purchase's title, the same user's next purchased title): "what a user bought next" instead of
"what a search bought". :func:`title_pairs` takes the query pairs when the logs have any, else those, else
none (the encoder is then kept untuned); the pairs' ``query`` column holds the anchor text either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recommender.encoders import TextEncoder
from recommender.metrics import rank_of_target, recall_at_k
from recommender.query_memory import normalize_query


def purchase_query_pairs(
    user_sequences: pd.DataFrame, splits: pd.DataFrame, items: pd.DataFrame, split: str
) -> pd.DataFrame:
    """(query, purchased item) pairs of one split: the search a purchase came from.

    A purchase is linked to its search by ``search_id``; purchases without one fall back to the latest
    search earlier in the same session. Purchases with neither are not pairs. Columns: ``query``
    (normalised), ``item_id``, ``title``, ``category``, ``target_id``.
    """
    purchases = user_sequences.loc[user_sequences["action"] == "purchase"].merge(
        splits.loc[splits["split"] == split, ["target_id"]], left_on="event_id", right_on="target_id"
    )
    searches = user_sequences.loc[user_sequences["action"] == "search"].copy()
    searches["query_norm"] = searches["query_norm"].where(
        searches["query_norm"].notna(), searches["query"].map(normalize_query)
    )
    searches = searches.loc[searches["query_norm"].notna()]
    by_search = searches.dropna(subset=["search_id"]).drop_duplicates("search_id").set_index("search_id")
    query = purchases["search_id"].map(by_search["query_norm"])

    unlinked = purchases.loc[query.isna()]
    if len(unlinked):
        earlier = pd.merge_asof(
            unlinked[["user_id", "session_key", "seq_no"]].reset_index().sort_values("seq_no"),
            searches[["user_id", "session_key", "seq_no", "query_norm"]].sort_values("seq_no"),
            on="seq_no",
            by=["user_id", "session_key"],
            direction="backward",
            allow_exact_matches=False,
        ).set_index("index")
        query = query.fillna(earlier["query_norm"])
    pairs = purchases.assign(query=query).dropna(subset=["query"])
    catalog = items[["item_id", "title", "category"]].drop_duplicates("item_id")
    pairs = pairs[["query", "item_id", "target_id"]].merge(catalog, on="item_id")
    return pairs.loc[
        pairs["title"].notna(), ["query", "item_id", "title", "category", "target_id"]
    ].reset_index(drop=True)


PAIR_COLUMNS = ["query", "item_id", "title", "category", "target_id"]
QUERY_PAIRS, PURCHASE_SEQUENCE_PAIRS, NO_PAIRS = "query", "purchase_sequence", "none"
PAIR_DESCRIPTIONS = {
    QUERY_PAIRS: "(query, purchased title) pairs",
    PURCHASE_SEQUENCE_PAIRS: "(earlier purchase's title, next purchased title) pairs",
    NO_PAIRS: "no pairs",
}


def purchase_sequence_pairs(
    user_sequences: pd.DataFrame, splits: pd.DataFrame, items: pd.DataFrame, split: str
) -> pd.DataFrame:
    """(earlier purchase's title, purchased item) pairs of one split: each target of ``split`` with the
    title of the same user's purchase just before it, in ``query``.

    The earlier purchase precedes the target, so a train target's pair holds train purchases only (the
    valid and test targets are each user's last two). A pair whose two titles are the same teaches
    nothing about what comes next and is left out. Columns as :func:`purchase_query_pairs`.
    """
    purchases = user_sequences.loc[
        user_sequences["action"] == "purchase", ["user_id", "seq_no", "event_id", "item_id"]
    ].sort_values(["user_id", "seq_no"], kind="stable")
    purchases["previous_item_id"] = purchases.groupby("user_id", sort=False)["item_id"].shift()
    targets = purchases.merge(
        splits.loc[splits["split"] == split, ["target_id"]], left_on="event_id", right_on="target_id"
    )
    catalog = items[["item_id", "title", "category"]].drop_duplicates("item_id")
    targets["query"] = targets["previous_item_id"].map(catalog.set_index("item_id")["title"])
    pairs = targets.dropna(subset=["query"])[["query", "item_id", "target_id"]].merge(catalog, on="item_id")
    keep = pairs["title"].notna() & (pairs["query"] != pairs["title"])
    return pairs.loc[keep, PAIR_COLUMNS].reset_index(drop=True)


PAIR_BUILDERS = {QUERY_PAIRS: purchase_query_pairs, PURCHASE_SEQUENCE_PAIRS: purchase_sequence_pairs}


@dataclass(frozen=True)
class TitlePairs:
    """The pairs a title encoder trains on (``train``) and is measured on (``valid``), and their kind."""

    source: str  # query | purchase_sequence | none
    train: pd.DataFrame
    valid: pd.DataFrame
    available: int  # train pairs of this kind among every training user (the share's are ``train``)

    @property
    def description(self) -> str:
        return PAIR_DESCRIPTIONS[self.source]


def title_pairs(
    sequences: pd.DataFrame, splits: pd.DataFrame, items: pd.DataFrame, train_splits: pd.DataFrame
) -> TitlePairs:
    """The first kind of pairs that every training user's train targets give: (query, purchased title),
    else (earlier purchase's title, next purchased title), else none. ``train`` holds that kind's pairs
    of the ``train_splits`` targets (a share of the users), ``valid`` those of every user's valid targets.

    ``sequences`` are the search and purchase rows of ``user_sequences``. The kind is chosen on every
    user, so a share of the users trains on the same kind of pairs as all of them.
    """
    for source, build in PAIR_BUILDERS.items():
        every_user = build(sequences, splits, items, "train")
        if len(every_user):
            train = build(sequences, train_splits, items, "train")
            return TitlePairs(source, train, build(sequences, splits, items, "valid"), len(every_user))
    empty = pd.DataFrame(columns=PAIR_COLUMNS)
    return TitlePairs(NO_PAIRS, empty, empty.copy(), 0)


def _nearest_allowed(
    anchors: torch.Tensor, candidates: torch.Tensor, excluded: list[set[int]], ceiling: torch.Tensor
) -> np.ndarray:
    """Per anchor row, the most similar candidate that is not excluded and scores at most ``ceiling``."""
    sims = anchors @ candidates.T  # [rows, n_candidates]
    rows = [r for r, cols in enumerate(excluded) for _ in cols]
    cols = [c for cols in excluded for c in cols]
    sims[rows, cols] = -torch.inf
    sims = sims.masked_fill(sims > ceiling[:, None], -torch.inf)
    best, index = sims.max(dim=1)
    return torch.where(torch.isfinite(best), index, -1).numpy()


def mine_hard_negatives(
    query_vectors: np.ndarray,
    title_vectors: np.ndarray,
    pair_query: np.ndarray,
    pair_title: np.ndarray,
    relative_margin: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Paper's two hard negatives per positive pair.

    ``query_vectors`` [Q, d] are the distinct train queries and ``title_vectors`` [T, d] the distinct
    catalog titles (unit length); ``pair_query``/``pair_title`` index them per pair. Returns, per pair,
    the index of the nearest non-positive title to its query and of the nearest non-positive query to
    its title (-1 where none qualifies). A candidate scoring within ``relative_margin`` of the positive
    pair's own similarity is skipped as a likely false negative (NV-Retriever's "TopK-PercPos", the
    filter sentence-transformers' ``mine_hard_negatives`` recommends); 0 gives the paper's plain rule.
    """
    titles_of_query: dict[int, set[int]] = {}
    queries_of_title: dict[int, set[int]] = {}
    for q, t in zip(pair_query.tolist(), pair_title.tolist(), strict=True):
        titles_of_query.setdefault(q, set()).add(t)
        queries_of_title.setdefault(t, set()).add(q)
    q_mat = torch.from_numpy(np.array(query_vectors, dtype=np.float32))
    t_mat = torch.from_numpy(np.array(title_vectors, dtype=np.float32))
    positive = (q_mat[pair_query] * t_mat[pair_title]).sum(dim=1)
    ceiling = positive - relative_margin * positive.abs()

    neg_title = np.full(len(pair_query), -1, dtype=np.int64)
    neg_query = np.full(len(pair_query), -1, dtype=np.int64)
    # rows per chunk so that one similarity block stays around 64M floats
    chunk = max(1, (1 << 26) // max(1, len(t_mat), len(q_mat)))
    for start in range(0, len(pair_query), chunk):
        rows = slice(start, start + chunk)
        q_rows, t_rows = pair_query[rows], pair_title[rows]
        neg_title[rows] = _nearest_allowed(
            q_mat[q_rows], t_mat, [titles_of_query[q] for q in q_rows.tolist()], ceiling[rows]
        )
        neg_query[rows] = _nearest_allowed(
            t_mat[t_rows], q_mat, [queries_of_title[t] for t in t_rows.tolist()], ceiling[rows]
        )
    return neg_title, neg_query


def title_recall(
    encoder: TextEncoder,
    pairs: pd.DataFrame,
    items: pd.DataFrame,
    k: int = 10,
    title_vectors: np.ndarray | None = None,
) -> float:
    """Query -> purchased-title Recall@k: each pair's item ranked among its category's catalog items.

    ``title_vectors`` (aligned with ``items``) may be passed when already computed with ``encoder``.
    """
    if len(pairs) == 0:
        return float("nan")
    catalog = items.reset_index(drop=True)
    vectors = title_vectors if title_vectors is not None else encoder.encode(catalog["title"].tolist())
    query_vectors = encoder.encode(pairs["query"].tolist())
    ranks = np.zeros(len(pairs), dtype=np.int64)
    for category, members in catalog.groupby("category").groups.items():
        members = np.asarray(members)
        rows = np.flatnonzero(pairs["category"].to_numpy() == category)
        if not len(rows):
            continue
        position = pd.Index(catalog.loc[members, "item_id"]).get_indexer(pairs["item_id"].iloc[rows])
        scores = query_vectors[rows] @ vectors[members].T
        ranks[rows] = rank_of_target(scores, position)
    return recall_at_k(ranks, k)
