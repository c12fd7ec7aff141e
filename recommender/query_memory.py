"""Query-product memory (arXiv 2410.11327 §4.2): similar past searches -> their top organic products.

Keys are search queries embedded by a text encoder (the paper uses CLIP; the offline default is MiniLM);
values are the products those searches listed, best organic rank first. A session's latest query is
embedded, its ``Q`` nearest stored queries are found by cosine similarity, and the union of their top
``V`` products becomes the prompt's candidate ids.

Time-awareness: a listing may feed a prediction only if it was first shown before the prediction time,
and a stored query only if one of its listings was. The memory stores, per query, its best
``max_stored_items`` listings with their ``first_shown_at`` so that both the online lookup and the
batch computation over every prompt can pick the top ``V`` among those already visible at that time.

:class:`MemorySettings` and :class:`MemoryManifest` load without torch or lancedb (the Dagster code
location reads them): callers pass the database in, and the lookup imports torch when it runs.
"""

from __future__ import annotations

import json
import re
import string
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from fashionrec.layout import QUERY_MEMORY_TABLE
from recommender.candidate_sources import Fallback, combine_candidates
from recommender.encoders import TextEncoder
from recommender.vector_store import (
    DEFAULT_INDEX_THRESHOLD,
    VECTOR_COLUMN,
    WriteResult,
    arrow_to_vectors,
    refresh_vectors,
)

if TYPE_CHECKING:
    import lancedb

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_NEVER = np.iinfo(np.int64).max


def normalize_query(query: str | None) -> str | None:
    """The dbt macro ``normalize_query`` in Python: lower-case, ASCII punctuation to spaces, whitespace
    collapsed, trimmed; None when nothing is left."""
    if query is None or (isinstance(query, float) and np.isnan(query)):
        return None
    return " ".join(_PUNCTUATION.sub(" ", str(query).lower()).split()) or None


@dataclass(frozen=True)
class MemorySettings:
    """Lookup sizes. The paper leaves Q and V open; its Figure 3 prompt shows 6 candidates, and Q=2
    neighbours x V=4 products give 5-8 distinct candidates once the neighbours' lists overlap."""

    neighbours: int = 2  # Q: nearest stored queries
    items_per_query: int = 4  # V: top organic products taken from each
    # listings kept per query, so that the top V among those visible at an earlier time still exist
    max_stored_items: int = 50


MEMORY_SCHEMA = pa.schema(
    [
        ("query_norm", pa.string()),
        ("first_shown_at", pa.timestamp("us", tz="UTC")),
        ("n_listings", pa.int32()),
        ("item_ids", pa.list_(pa.string())),
        ("item_first_shown_at", pa.list_(pa.timestamp("us", tz="UTC"))),
    ]
)


def to_utc_ns(values) -> np.ndarray:
    """Timestamps (naive = UTC) as int64 nanoseconds since the epoch; missing -> int64 max ("never")."""
    stamps = pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(None).dt.as_unit("ns")
    out = np.full(len(stamps), _NEVER, dtype=np.int64)
    present = stamps.notna().to_numpy()
    out[present] = stamps[present].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return out


def memory_rows(query_listings: pd.DataFrame, max_stored_items: int) -> pd.DataFrame:
    """One row per normalised query: its best listings by ``organic_rank`` with their first-shown times."""
    required = {"query_norm", "item_id", "organic_rank", "first_shown_at"}
    missing = required - set(query_listings.columns)
    if missing:
        raise ValueError(f"query_listings lacks columns {sorted(missing)}; expected the query_listings mart")
    listings = query_listings.loc[query_listings["query_norm"].notna(), list(required)].copy()
    listings["first_shown_at"] = pd.to_datetime(listings["first_shown_at"], utc=True)
    top = listings.sort_values(["query_norm", "organic_rank", "item_id"], kind="stable")
    top = top.groupby("query_norm", sort=True).head(max_stored_items)
    by_query = listings.groupby("query_norm", sort=True)
    grouped = top.groupby("query_norm", sort=True)
    rows = pd.DataFrame(
        {
            "query_norm": pd.Series(list(by_query.groups), dtype=object),
            "first_shown_at": by_query["first_shown_at"].min().to_numpy(),
            "n_listings": by_query.size().to_numpy(np.int32),
            "item_ids": pd.Series(grouped["item_id"].agg(list).to_list(), dtype=object),
            "item_first_shown_at": pd.Series(grouped["first_shown_at"].agg(list).to_list(), dtype=object),
        }
    )
    return rows[MEMORY_SCHEMA.names]


@dataclass(frozen=True)
class MemoryManifest:
    """Which encoder built the memory and with which lookup sizes: lookups must embed queries with the
    same encoder. Saved as ``fashionrec.layout.QUERY_MEMORY_MANIFEST``."""

    encoder_spec: str
    encoder_fingerprint: str
    dim: int
    neighbours: int
    items_per_query: int
    max_stored_items: int

    @classmethod
    def of(cls, encoder: TextEncoder, settings: MemorySettings) -> MemoryManifest:
        return cls(encoder.spec, encoder.fingerprint, encoder.dim, **asdict(settings))

    @property
    def settings(self) -> MemorySettings:
        return MemorySettings(self.neighbours, self.items_per_query, self.max_stored_items)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> MemoryManifest:
        if not path.is_file():
            raise FileNotFoundError(f"no query memory manifest at {path}; materialize the query_memory asset")
        return cls(**json.loads(path.read_text()))


def build_memory(
    db: lancedb.DBConnection,
    query_listings: pd.DataFrame,
    encoder: TextEncoder,
    settings: MemorySettings = MemorySettings(),
    *,
    index_threshold: int = DEFAULT_INDEX_THRESHOLD,
) -> WriteResult:
    """Write the ``query_memory`` table; queries whose text and encoder are unchanged keep their vectors."""
    rows = memory_rows(query_listings, settings.max_stored_items)
    return refresh_vectors(
        db,
        QUERY_MEMORY_TABLE,
        rows,
        key="query_norm",
        text_column="query_norm",
        encode=encoder.encode,
        fingerprint=encoder.fingerprint,
        schema=MEMORY_SCHEMA,
        index_threshold=index_threshold,
    )


@dataclass
class QueryMemory:
    """The whole memory in RAM, for computing candidates of many prompts with matrix products."""

    queries: np.ndarray  # [n] object
    vectors: np.ndarray  # [n, d] float32, unit length
    first_shown_ns: np.ndarray  # [n] int64
    item_ids: list[np.ndarray]  # per query, object arrays, best organic rank first
    item_first_shown_ns: list[np.ndarray]  # aligned int64 arrays

    @classmethod
    def from_table(cls, table: lancedb.table.Table) -> QueryMemory:
        data = table.to_arrow()
        # list columns are split at their offsets instead of being converted row by row
        ids, times = data["item_ids"].combine_chunks(), data["item_first_shown_at"].combine_chunks()
        flat_ids = np.array(ids.flatten().to_pylist(), dtype=object)
        flat_times = times.flatten().cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
        id_cuts = ids.offsets.to_numpy()[1:-1] - ids.offsets[0].as_py()
        time_cuts = times.offsets.to_numpy()[1:-1] - times.offsets[0].as_py()
        return cls(
            queries=np.array(data["query_norm"].to_pylist(), dtype=object),
            vectors=arrow_to_vectors(data[VECTOR_COLUMN]),
            first_shown_ns=to_utc_ns(data["first_shown_at"].to_pandas()),
            item_ids=np.split(flat_ids, id_cuts) if len(data) else [],
            item_first_shown_ns=np.split(flat_times, time_cuts) if len(data) else [],
        )

    def __len__(self) -> int:
        return len(self.queries)

    def nearest(
        self,
        query_vectors: np.ndarray,
        cutoffs_ns: np.ndarray,
        k: int,
        row_chunk: int = 512,
        memory_chunk: int = 65_536,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query vector, the ``k`` most similar stored queries first shown before its cutoff.

        Returns memory indices ``[m, k]`` (-1 where fewer are visible) and similarities. Rows and memory
        are processed in chunks with a running top-k, so memory use stays bounded for large memories.
        """
        import torch

        m = len(query_vectors)
        best_idx = np.full((m, k), -1, dtype=np.int64)
        best_sim = np.full((m, k), -np.inf, dtype=np.float32)
        if m == 0 or len(self) == 0 or k == 0:
            return best_idx, best_sim
        memory = torch.from_numpy(np.array(self.vectors, dtype=np.float32))
        memory_first = torch.from_numpy(np.array(self.first_shown_ns, dtype=np.int64))
        for r0 in tqdm(range(0, m, row_chunk), desc="memory lookup", unit="chunk", disable=m <= row_chunk):
            rows = torch.as_tensor(np.ascontiguousarray(query_vectors[r0 : r0 + row_chunk], dtype=np.float32))
            cut = torch.as_tensor(cutoffs_ns[r0 : r0 + row_chunk])[:, None]
            top_sim = torch.full((len(rows), k), -torch.inf)
            top_idx = torch.full((len(rows), k), -1, dtype=torch.int64)
            for c0 in range(0, len(self), memory_chunk):
                sims = rows @ memory[c0 : c0 + memory_chunk].T  # [r, c]
                sims = sims.masked_fill(memory_first[c0 : c0 + memory_chunk][None, :] >= cut, -torch.inf)
                kk = min(k, sims.shape[1])
                chunk_sim, chunk_idx = sims.topk(kk, dim=1)
                merged_sim = torch.cat([top_sim, chunk_sim], dim=1)
                merged_idx = torch.cat([top_idx, chunk_idx + c0], dim=1)
                top_sim, order = merged_sim.topk(k, dim=1)
                top_idx = merged_idx.gather(1, order)
            top_idx = torch.where(torch.isfinite(top_sim), top_idx, -1)
            best_idx[r0 : r0 + len(rows)] = top_idx.numpy()
            best_sim[r0 : r0 + len(rows)] = top_sim.numpy()
        return best_idx, best_sim

    def candidates(
        self, neighbour_indices: np.ndarray, cutoffs_ns: np.ndarray, items_per_query: int
    ) -> list[list[str]]:
        """Union of each neighbour's top-``V`` products visible before the cutoff, nearest neighbour first."""
        out: list[list[str]] = []
        for neighbours, cutoff in zip(neighbour_indices, cutoffs_ns, strict=True):
            seen: dict[str, None] = {}
            for j in neighbours:
                if j < 0:
                    continue
                visible = self.item_ids[j][self.item_first_shown_ns[j] < cutoff][:items_per_query]
                seen.update(dict.fromkeys(visible.tolist()))
            out.append(list(seen))
        return out


def prompt_candidates(
    prompt_inputs: pd.DataFrame,
    memory: QueryMemory,
    encoder: TextEncoder,
    settings: MemorySettings = MemorySettings(),
    *,
    cutoff_column: str = "target_ts",
    fallback: Fallback | None = None,
) -> pd.DataFrame:
    """Candidate ids for every ``prompt_inputs`` row (the ``prompt_candidates`` table).

    Only listings first shown strictly before the row's ``cutoff_column`` (the prediction time by
    default) are visible. Rows without a latest query get no candidates from the memory; a ``fallback``
    (``recommender.candidate_sources``; it needs ``category`` and ``history``) then fills them with up to
    Q x V others when it applies, and its added sources (e.g. ``family``) extend every list after that.
    ``candidate_source`` says where each list came from. Distinct queries are
    encoded once and neighbours are found with chunked matrix products, not one vector search per row.
    """
    required = {"target_id", "target_item_id", "latest_query", cutoff_column}
    missing = required - set(prompt_inputs.columns)
    if missing:
        raise ValueError(f"prompt_inputs lacks columns {sorted(missing)}; expected the prompt_inputs mart")
    queries = prompt_inputs["latest_query"].map(normalize_query)
    has_query = queries.notna().to_numpy()
    cutoffs = to_utc_ns(prompt_inputs[cutoff_column])
    candidates: list[list[str]] = [[] for _ in range(len(prompt_inputs))]
    rows = np.flatnonzero(has_query)
    if len(rows) and len(memory):
        vectors = encoder.encode(queries.iloc[rows].tolist())
        neighbours, _ = memory.nearest(vectors, cutoffs[rows], settings.neighbours)
        for row, found in zip(
            rows, memory.candidates(neighbours, cutoffs[rows], settings.items_per_query), strict=True
        ):
            candidates[row] = found
    limit = settings.neighbours * settings.items_per_query
    filled = fallback is not None and fallback.applies(len(memory))
    candidates, sources = combine_candidates(
        candidates,
        fallback.candidates(prompt_inputs, limit) if filled else [],
        limit,
        fallback.added_candidates(prompt_inputs) if fallback is not None else [],
        fallback.n_added if fallback is not None else 0,
    )
    targets = prompt_inputs["target_item_id"].tolist()
    return pd.DataFrame(
        {
            "target_id": prompt_inputs["target_id"].to_numpy(object),
            "candidate_item_ids": candidates,
            "n_candidates": np.array([len(c) for c in candidates], dtype=np.int32),
            "target_in_candidates": [t in set(c) for t, c in zip(targets, candidates, strict=True)],
            "candidate_source": sources,
        }
    )


def hit_rate(candidates: pd.DataFrame, prompt_inputs: pd.DataFrame, split: str = "valid") -> dict[str, float]:
    """How often the ``split`` target is among its candidates: over all its rows, and over rows with a
    query."""
    joined = prompt_inputs[["target_id", "split", "latest_query"]].merge(candidates, on="target_id")
    part = joined.loc[joined["split"] == split]
    with_query = part.loc[part["latest_query"].map(normalize_query).notna()]
    return {
        f"{split}_targets": float(len(part)),
        f"{split}_hit_rate": float(part["target_in_candidates"].mean()) if len(part) else float("nan"),
        f"{split}_hit_rate_with_query": (
            float(with_query["target_in_candidates"].mean()) if len(with_query) else float("nan")
        ),
        f"{split}_mean_candidates": float(part["n_candidates"].mean()) if len(part) else float("nan"),
    }


CUTOFF_COLUMNS = ("target_ts", "latest_query_ts")  # prompt_inputs columns that can give the prediction time


@dataclass(frozen=True)
class MemoryBuild:
    """The query memory as written, and every prompt target's candidates read back from it."""

    written: WriteResult
    candidates: pd.DataFrame  # the prompt_candidates table
    valid_quality: dict[str, float]  # hit_rate over the valid targets
    lookup_seconds: float


def build_memory_and_candidates(
    db: lancedb.DBConnection,
    query_listings: pd.DataFrame,
    prompt_inputs: pd.DataFrame,
    encoder: TextEncoder,
    settings: MemorySettings,
    *,
    cutoff_column: str = "target_ts",
    index_threshold: int = DEFAULT_INDEX_THRESHOLD,
    fallback: Fallback | None = None,
) -> MemoryBuild:
    """Write the memory, then compute the candidates of every ``prompt_inputs`` row from exactly the
    table version just written (and the ``fallback``'s, see :func:`prompt_candidates`)."""
    if cutoff_column not in CUTOFF_COLUMNS:
        raise ValueError(f"cutoff must be one of {CUTOFF_COLUMNS}, got {cutoff_column!r}")
    written = build_memory(db, query_listings, encoder, settings, index_threshold=index_threshold)
    start = time.perf_counter()
    table = db.open_table(QUERY_MEMORY_TABLE)
    table.checkout(written.version)
    memory = QueryMemory.from_table(table)
    candidates = prompt_candidates(
        prompt_inputs, memory, encoder, settings, cutoff_column=cutoff_column, fallback=fallback
    )
    seconds = time.perf_counter() - start
    return MemoryBuild(written, candidates, hit_rate(candidates, prompt_inputs, "valid"), seconds)


CANDIDATES_SCHEMA = pa.schema(
    [
        ("target_id", pa.string()),
        ("candidate_item_ids", pa.list_(pa.string())),
        ("n_candidates", pa.int32()),
        ("target_in_candidates", pa.bool_()),
        ("candidate_source", pa.string()),  # memory | history | popular | a mix (history+popular) | none
    ]
)


def candidates_table(candidates: pd.DataFrame) -> pa.Table:
    """The ``prompt_candidates`` DuckDB table from :func:`prompt_candidates`' frame."""
    return pa.table(
        {
            "target_id": candidates["target_id"].astype(str).tolist(),
            "candidate_item_ids": candidates["candidate_item_ids"].tolist(),
            "n_candidates": candidates["n_candidates"].tolist(),
            "target_in_candidates": candidates["target_in_candidates"].tolist(),
            "candidate_source": candidates["candidate_source"].tolist(),
        },
        schema=CANDIDATES_SCHEMA,
    )
