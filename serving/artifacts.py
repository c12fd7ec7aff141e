"""The materialized artifacts the service answers from, copied read-only into one immutable snapshot.

A snapshot holds everything one request needs: the catalog and train popularity (from DuckDB), the ID
and title vector matrices and the query memory (from LanceDB, each pinned to the version it was read
at), the encoders, the prompt renderer and the LLM with its adapter. DuckDB is opened ``read_only`` only
for the few queries that copy what is needed, so a pipeline run that wants to write is blocked for
milliseconds at most; LanceDB versions are immutable, so a table re-materialized while it is being read
cannot be half-read. The service builds a new snapshot off to the side and swaps one reference
(``serving.service``).

Every path comes from ``fashionrec.layout`` and the prompt budget from ``fashionrec.presets``, as the
assets that wrote the artifacts had them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import lancedb
import numpy as np
import yaml

from fashionrec.layout import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    ITEM_ID_VECTORS,
    ITEM_TITLE_VECTORS,
    QUERY_MEMORY_TABLE,
)
from fashionrec.presets import get_preset
from fashionrec.settings import DBT_PROJECT_DIR, Paths
from recommender.encoder_specs import build_encoder
from recommender.encoders import TextEncoder
from recommender.generation import GenerationSettings, Recommender, load_recommender
from recommender.generation_settings import DEFAULT_DECODING
from recommender.language_model import (
    DEFAULT_MAX_DEQUANTIZED_BYTES,
    load_tokenizer,
    read_base_model_pointer,
)
from recommender.prompts import (
    DEFAULT_TEMPLATE_PATH,
    PromptBudget,
    PromptRenderer,
    prompt_variant,
    token_counter,
)
from recommender.query_memory import MemoryManifest, MemorySettings, QueryMemory
from recommender.retrieval import VectorCatalog, top_k_indices

ITEM_COLUMNS = ("item_id", "title", "category", "brand", "color", "size", "season", "holiday", "occasion")
_LOCK_RETRY_SECONDS = 0.25


class ArtifactsUnavailable(RuntimeError):
    """An artifact is missing or cannot be read now; the message says which and what to run."""


@dataclass(frozen=True)
class LoadOptions:
    """Which artifacts to load and how; every field has the pipeline's default."""

    preset: str
    variant: str = "full"  # the prompt variant (and adapter) the generations asset used by default
    # how the LLM answers (recommender.generation_settings.DECODINGS), the generations asset's default
    decoding: str = DEFAULT_DECODING
    # None: the preset's prompt budget, the one the adapter was trained and evaluated with
    max_sequence_tokens: int | None = None
    duckdb_lock_timeout_s: float = 30.0  # how long to wait while a pipeline run holds the write lock
    # CPU only: 4-bit layers are dequantized once at load while their float weights fit in this many bytes
    # with the adapter folded in (recommender.language_model.load_answering_model); 0 turns it off
    max_dequantized_bytes: int = DEFAULT_MAX_DEQUANTIZED_BYTES


@dataclass(frozen=True)
class ArtifactVersions:
    """What exactly a snapshot was loaded from, for ``GET /health`` and for tracing an answer."""

    loaded_at: datetime
    base_model: str
    adapter_dir: str
    adapter_sha256: str  # of the adapter's safetensors weights and config
    adapter_modified_at: datetime
    lancedb_versions: dict[str, int]
    eval_run_id: str | None  # the latest evaluation run in eval_metrics, None before the first one
    variant: str
    max_sequence_tokens: int
    max_history_events: int
    dequantized_layers: int  # 4-bit linear layers held as their dequantized weights (0: all stay 4-bit)
    # ranked_prior: the order prior's weight the generations asset chose on valid ("inf": the order
    # alone); None: no ranked_prior generations of this variant yet, so the model ranks alone
    order_prior_weight: str | None


@dataclass(frozen=True)
class Catalog:
    """The ``items`` mart in memory with purchases per item in the train split (the popularity baseline)."""

    items: Mapping[str, dict[str, Any]]  # item_id -> the ITEM_COLUMNS of the items mart
    train_purchases: Mapping[str, int]
    # per category (and None for the whole catalog): item ids by train purchases, most first, ties by
    # item_id: the popularity baseline's order (evaluation.protocol.popular_top_k)
    popular: Mapping[str | None, tuple[str, ...]]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(category for category in self.popular if category is not None)

    @classmethod
    def build(cls, rows: list[dict[str, Any]], purchases: Mapping[str, int]) -> Catalog:
        items = {row["item_id"]: row for row in rows}
        by_category: dict[str | None, list[str]] = {None: sorted(items)}
        for item_id in by_category[None]:
            by_category.setdefault(items[item_id]["category"], []).append(item_id)
        popular = {}
        for category, item_ids in by_category.items():
            counts = np.array([[purchases.get(item_id, 0) for item_id in item_ids]], dtype=np.float32)
            order = top_k_indices(counts, len(item_ids))[0]  # stable: equal counts keep item_id order
            popular[category] = tuple(item_ids[i] for i in order)
        return cls(items=items, train_purchases=dict(purchases), popular=popular)


@dataclass(frozen=True)
class ArtifactSnapshot:
    """One consistent set of loaded artifacts; never mutated after it is built."""

    catalog: Catalog
    id_vectors: VectorCatalog
    title_vectors: VectorCatalog
    memory: QueryMemory
    memory_settings: MemorySettings
    query_encoder: TextEncoder
    title_encoder: TextEncoder
    renderer: PromptRenderer
    recommender: Recommender
    versions: ArtifactVersions


def max_history_events(project_dir: Path = DBT_PROJECT_DIR) -> int:
    """The dbt var ``max_history_events``: how many events a ``prompt_inputs`` history holds."""
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text())
    return int(config["vars"]["max_history_events"])


def connect_read_only(database: Path, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting while a pipeline run holds DuckDB's write lock on the file."""
    if not database.is_file():
        raise ArtifactsUnavailable(f"no warehouse at {database}; build it with `fashionrec run`")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(database), read_only=True)
        except duckdb.Error as error:  # IOException across processes, ConnectionException within one
            if "lock" not in str(error).lower() or time.monotonic() >= deadline:
                raise ArtifactsUnavailable(
                    f"cannot open {database} read-only ({error}); a pipeline run may be writing it, try again"
                ) from error
            time.sleep(_LOCK_RETRY_SECONDS)


def _read_warehouse(paths: Paths, timeout_s: float, variant: str) -> tuple[Catalog, str | None, float | None]:
    with connect_read_only(paths.duckdb_path, timeout_s) as con:
        tables = {
            row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()
        }
        missing = sorted({"items", "splits"} - tables)
        if missing:
            raise ArtifactsUnavailable(
                f"table(s) {missing} missing in {paths.duckdb_path}; run `fashionrec run 'group:warehouse'`"
            )
        rows = con.sql(f"select {', '.join(ITEM_COLUMNS)} from items order by item_id").to_arrow_table()
        purchases = dict(
            con.execute(
                "select target_item_id, count(*) from splits where split = 'train' group by target_item_id"
            ).fetchall()
        )
        run_id = None
        if "eval_metrics" in tables:
            latest = con.execute(
                "select run_id from eval_metrics order by created_at desc, run_id desc limit 1"
            ).fetchone()
            run_id = latest[0] if latest else None
        weight = None
        if "generations" in tables and "order_prior_weight" in _columns(con, "generations"):
            chosen = con.execute(
                "select any_value(order_prior_weight) from generations where variant = ? and adapter = ? "
                "and decoding = 'ranked_prior' and order_prior_weight is not null",
                [variant, variant],
            ).fetchone()
            weight = chosen[0] if chosen else None
    return Catalog.build(rows.to_pylist(), purchases), run_id, weight


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"describe {table}").fetchall()}


def _pinned_table(db: lancedb.DBConnection, name: str) -> tuple[Any, int]:
    """A LanceDB table checked out at its current version, so every read sees that one version."""
    try:
        table = db.open_table(name)
    except (FileNotFoundError, ValueError) as error:
        raise ArtifactsUnavailable(
            f"LanceDB table {name!r} is missing: {error}; run `fashionrec run`"
        ) from error
    version = table.version
    table.checkout(version)
    return table, version


def _file_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _require_file(path: Path, asset: str) -> Path:
    if not path.is_file():
        raise ArtifactsUnavailable(f"{path} is missing; materialize the {asset} asset (`fashionrec run`)")
    return path


def load_artifacts(paths: Paths, options: LoadOptions) -> ArtifactSnapshot:
    """Read every artifact the service needs into memory; raises ``ArtifactsUnavailable`` when one is
    missing or the warehouse stays locked, so a failed reload leaves the previous snapshot in place."""
    variant = prompt_variant(options.variant)
    sequence_tokens = options.max_sequence_tokens or get_preset(options.preset).llm.max_sequence_tokens

    catalog, run_id, order_prior_weight = _read_warehouse(paths, options.duckdb_lock_timeout_s, variant.name)

    db = lancedb.connect(str(paths.lancedb_dir))
    id_table, id_version = _pinned_table(db, ITEM_ID_VECTORS)
    title_table, title_version = _pinned_table(db, ITEM_TITLE_VECTORS)
    memory_table, memory_version = _pinned_table(db, QUERY_MEMORY_TABLE)
    id_vectors = VectorCatalog.from_table(id_table)
    title_vectors = VectorCatalog.from_table(title_table)
    memory = QueryMemory.from_table(memory_table)

    artifacts = paths.artifacts
    manifest = MemoryManifest.load(artifacts.query_memory_manifest)
    query_encoder = build_encoder(manifest.encoder_spec, show_progress=False)
    # the encoder that made item_title_vectors: a generated title must land in the same vector space
    title_manifest = json.loads(
        _require_file(artifacts.title_vectors_manifest(), "item_title_vectors").read_text()
    )
    title_encoder = build_encoder(title_manifest["encoder_spec"], show_progress=False)
    for encoder, expected, name in (
        (query_encoder, manifest.dim, QUERY_MEMORY_TABLE),
        (title_encoder, title_vectors.dim, ITEM_TITLE_VECTORS),
    ):
        if encoder.dim != expected:
            raise ArtifactsUnavailable(
                f"encoder {encoder.spec} gives {encoder.dim}-d vectors but {name} holds {expected}-d ones; "
                "materialize the features group again"
            )

    try:
        base_model = read_base_model_pointer(artifacts.base_model_pointer)
    except FileNotFoundError as error:
        raise ArtifactsUnavailable(str(error)) from error
    adapter = artifacts.adapter(variant.name)
    weights = _require_file(adapter / ADAPTER_WEIGHTS_FILE, "lora_adapter")
    adapter_files = [_require_file(adapter / ADAPTER_CONFIG_FILE, "lora_adapter"), weights]
    adapter_digest = _file_digest(adapter_files)
    rows = [(item_id, item["category"], item["title"]) for item_id, item in sorted(catalog.items.items())]
    # the generations asset's defaults (paper §5.1, constrained decoding) and its order prior choice
    settings = GenerationSettings(order_prior_weight=order_prior_weight or 0.0)
    recommender, dequantized = load_recommender(
        base_model, adapter, rows, settings, options.max_dequantized_bytes
    )
    if _file_digest(adapter_files) != adapter_digest:  # lora_adapter re-materialized meanwhile
        raise ArtifactsUnavailable(f"the adapter in {adapter} changed while it was loaded; reload again")
    # its own tokenizer: generation switches the shared one's padding side, counting must not race it
    renderer = PromptRenderer(
        token_counter(load_tokenizer(base_model)),
        PromptBudget(max_sequence_tokens=sequence_tokens),
        DEFAULT_TEMPLATE_PATH,
        catalog=catalog.items,
    )
    versions = ArtifactVersions(
        loaded_at=datetime.now(UTC),
        base_model=base_model,
        adapter_dir=str(adapter),
        adapter_sha256=adapter_digest,
        adapter_modified_at=datetime.fromtimestamp(weights.stat().st_mtime, UTC),
        lancedb_versions={
            ITEM_ID_VECTORS: id_version,
            ITEM_TITLE_VECTORS: title_version,
            QUERY_MEMORY_TABLE: memory_version,
        },
        eval_run_id=run_id,
        variant=variant.name,
        max_sequence_tokens=sequence_tokens,
        max_history_events=max_history_events(),
        dequantized_layers=dequantized,
        order_prior_weight=None if order_prior_weight is None else str(order_prior_weight),
    )
    return ArtifactSnapshot(
        catalog=catalog,
        id_vectors=id_vectors,
        title_vectors=title_vectors,
        memory=memory,
        memory_settings=manifest.settings,
        query_encoder=query_encoder,
        title_encoder=title_encoder,
        renderer=renderer,
        recommender=recommender,
        versions=versions,
    )
