"""Feature assets (group ``features``): the three vector stores the paper's retrieval needs.

- ``query_memory`` (+ ``prompt_candidates``): query-product memory in LanceDB and the candidate ids it
  gives every prompt target (arXiv 2410.11327 §4.2), computed with ``serving.query_memory``;
- ``title_encoder`` -> ``item_title_vectors``: the triplet-fine-tuned title encoder
  (``training.title_encoder``) and every catalog title embedded with it, refreshed incrementally;
- ``item_id_vectors``: CORE trained on the train split, in ``assets.id_vectors`` (it shares this module's
  vector-table checks).

Each asset records the LanceDB table version it wrote, so a run can be traced to the vectors it used,
and every vector table has an asset check: one row per catalog item (or stored query), the expected
dimension, unit norm and no NaN.
"""

# torch, sentence-transformers and the training code are imported inside the assets that run them: every
# `fashionrec` command and `dagster dev` load this module first, and those imports take seconds each.
# Module level keeps to what the definitions need (table names, defaults), from torch-free modules.
import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.resources import LanceDBResource
from fashionrec.settings import paths, preset
from serving.encoders import DEFAULT_ENCODER_SPEC, build_encoder, save_encoder_manifest
from serving.query_memory import (
    MANIFEST_FILE as QUERY_MEMORY_MANIFEST,
)
from serving.query_memory import (
    MEMORY_TABLE,
    MemoryManifest,
    MemorySettings,
    QueryMemory,
    build_memory,
    hit_rate,
    prompt_candidates,
)
from serving.retrieval import ITEM_TITLE_VECTORS
from serving.vector_store import (
    DEFAULT_INDEX_THRESHOLD,
    refresh_vectors,
    table_exists,
    vector_table_stats,
)
from training.baseline_names import check_user_share, run_method, user_share_record

FEATURES_GROUP = "features"
QUERY_MEMORY_DIR = "query_memory"  # under artifacts/: the manifest naming the query encoder
TITLE_ENCODER_DIR = "title_encoder"  # under artifacts/: fine-tuned encoder + its manifest
USER_SHARE_FILE = "user_share.json"  # next to a title encoder: the training users it learnt from
# under artifacts/: the encoder that made item_title_vectors (generated titles must use the same one)
TITLE_VECTORS_MANIFEST = "item_title_vectors.json"
NORM_TOLERANCE = 1e-3


def title_vectors_manifest(table: str = ITEM_TITLE_VECTORS) -> Path:
    """The record of the encoder that wrote a title-vector table (readers must encode with the same)."""
    if not table.replace("_", "").isalnum():  # it names a file next to the artifacts
        raise dg.Failure(f"title vector table {table!r} must be letters, digits and '_' only")
    name = TITLE_VECTORS_MANIFEST if table == ITEM_TITLE_VECTORS else f"{table}.json"
    return paths().artifacts_dir / name


def _is_tiny() -> bool:
    return preset() == "tiny"


def rounded_metric(value: float) -> float:
    """Four decimals; NaN (nothing to measure, e.g. logs without searches) stays NaN."""
    return round(float(value), 4) if np.isfinite(value) else float("nan")


class QueryMemoryConfig(dg.Config):
    """Query-product memory settings (paper §4.2)."""

    encoder: str = Field(
        default=DEFAULT_ENCODER_SPEC,
        description="Query encoder spec: 'sentence_transformers[:PATH]' (default: bundled MiniLM) or "
        "'open_clip:ARCH@PRETRAINED' (the paper's CLIP).",
    )
    neighbours: int = Field(default=MemorySettings.neighbours, description="Q: nearest stored queries.")
    items_per_query: int = Field(
        default=MemorySettings.items_per_query, description="V: top organic products per neighbour."
    )
    max_stored_items: int = Field(
        default=MemorySettings.max_stored_items, description="Listings kept per query for time filtering."
    )
    cutoff: str = Field(
        default="target_ts",
        description="prompt_inputs column giving the prediction time: listings first shown at or after it "
        "are invisible ('target_ts' or the stricter 'latest_query_ts').",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "query_memory",
            group_name=FEATURES_GROUP,
            deps=["query_listings"],
            kinds={"lancedb"},
            description="LanceDB table query_memory: one row per normalised query with its vector and its "
            "best organic listings (item_ids, item_first_shown_at).",
        ),
        dg.AssetSpec(
            "prompt_candidates",
            group_name=FEATURES_GROUP,
            deps=["query_memory", "prompt_inputs"],
            kinds={"duckdb"},
            description="One row per prompt_inputs target: candidate_item_ids from the query memory (only "
            "listings first shown before the prediction time), n_candidates, target_in_candidates.",
        ),
    ],
    can_subset=False,
)
def query_memory(
    context: dg.AssetExecutionContext,
    config: QueryMemoryConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
):
    """Embed every normalised query, store its top products, and compute each prompt's candidates."""
    if config.cutoff not in ("target_ts", "latest_query_ts"):
        raise dg.Failure(f"cutoff must be 'target_ts' or 'latest_query_ts', got {config.cutoff!r}")
    settings = MemorySettings(config.neighbours, config.items_per_query, config.max_stored_items)
    with duckdb.get_connection() as con:
        listings = con.execute(
            "select query_norm, item_id, organic_rank, first_shown_at from query_listings"
        ).df()
        prompts = con.execute(
            "select target_id, split, target_item_id, latest_query, latest_query_ts, target_ts "
            "from prompt_inputs"
        ).df()
    encoder = build_encoder(config.encoder)
    db = lancedb.connect()
    written = build_memory(db, listings, encoder, settings, index_threshold=config.index_threshold)
    MemoryManifest(
        encoder.spec,
        encoder.fingerprint,
        encoder.dim,
        settings.neighbours,
        settings.items_per_query,
        settings.max_stored_items,
    ).save(paths().artifacts_dir / QUERY_MEMORY_DIR)

    start = time.perf_counter()
    table = db.open_table(MEMORY_TABLE)
    table.checkout(written.version)  # read exactly the version recorded in the metadata
    memory = QueryMemory.from_table(table)
    candidates = prompt_candidates(prompts, memory, encoder, settings, cutoff_column=config.cutoff)
    lookup_seconds = time.perf_counter() - start
    _write_candidates(duckdb, candidates)
    quality = hit_rate(candidates, prompts, "valid")
    context.log.info(f"query memory: {written.rows} queries, valid hit rate {quality['valid_hit_rate']:.3f}")
    yield dg.MaterializeResult(
        asset_key="query_memory",
        metadata={
            **written.metadata(),
            "dagster/row_count": written.rows,
            "encoder": encoder.spec,
            "dim": encoder.dim,
        },
    )
    yield dg.MaterializeResult(
        asset_key="prompt_candidates",
        metadata={
            "dagster/row_count": len(candidates),
            "Q_neighbours": settings.neighbours,
            "V_items_per_query": settings.items_per_query,
            "cutoff": config.cutoff,
            "memory_lancedb_version": written.version,
            "lookup_seconds": round(lookup_seconds, 3),
            "lookups_per_second": round(len(candidates) / lookup_seconds, 1) if lookup_seconds > 0 else 0.0,
            "share_with_candidates": float((candidates["n_candidates"] > 0).mean())
            if len(candidates)
            else 0.0,
            **{k: rounded_metric(v) for k, v in quality.items()},
        },
    )


def _write_candidates(duckdb: DuckDBResource, candidates: pd.DataFrame) -> None:
    table = pa.table(
        {
            "target_id": pa.array(candidates["target_id"].astype(str).tolist(), pa.string()),
            "candidate_item_ids": pa.array(candidates["candidate_item_ids"].tolist(), pa.list_(pa.string())),
            "n_candidates": pa.array(candidates["n_candidates"].tolist(), pa.int32()),
            "target_in_candidates": pa.array(candidates["target_in_candidates"].tolist(), pa.bool_()),
        }
    )
    with duckdb.get_connection() as con:
        con.register("prompt_candidates_arrow", table)
        con.execute("create or replace table prompt_candidates as select * from prompt_candidates_arrow")
        con.unregister("prompt_candidates_arrow")


class TitleEncoderAssetConfig(dg.Config):
    """Title encoder fine-tuning (paper §4.4 "Title Embedding Model")."""

    kind: str = Field(
        default="sentence_transformers",
        description="'sentence_transformers' (fine-tune base_model) or 'lstm' (the paper's token "
        "embedding + LSTM encoder, trained from scratch).",
    )
    base_model: str = Field(
        default="", description="sentence-transformers directory; empty = bundled MiniLM."
    )
    epochs: int | None = Field(
        default=None,
        description="Epochs, each re-mining hard negatives; default 2 on tiny, 1 on demo, 3 otherwise "
        "(LSTM: 10).",
    )
    batch_size: int | None = Field(
        default=None, description="Pairs per step; default 16 on tiny, 32 otherwise."
    )
    learning_rate: float | None = Field(default=None, description="Default 2e-5 (MiniLM) / 1e-3 (LSTM).")
    margin: float = Field(default=0.2, description="Triplet margin in cosine distance.")
    max_pairs: int | None = Field(
        default=None,
        description="Cap on train pairs per epoch (sampled); default 1,024 on demo, none otherwise.",
    )
    run_name: str = Field(
        default="",
        description="Name of a title encoder run beside the default one (e.g. 'users_10', the low-resource "
        "study): saved under artifacts/title_encoder-<run_name>, for item_title_vectors' "
        "title_encoder_run; artifacts/title_encoder, which the default title vectors and the evaluation "
        "read, is left as it is. Empty: the default title encoder.",
    )
    train_user_fraction: float = Field(
        default=1.0,
        description="Share of training users whose train (query, purchased title) pairs the encoder learns "
        "from (low-resource, paper §5.4), drawn by a hash of user_id and user_seed as the LoRA adapters' "
        "shares are (nested); below 1 it needs a run_name. Valid pairs stay every user's.",
    )
    user_seed: int = Field(
        default=0, description="Seed of the user hash; 0 draws the same users as lora_adapter's seed 0."
    )


def title_encoder_dir(run_name: str = "") -> Path:
    """Where a title encoder is saved: ``artifacts/title_encoder``, or ``-<run_name>`` for a named run."""
    return paths().artifacts_dir / run_method(TITLE_ENCODER_DIR, run_name)


@dg.asset(
    group_name=FEATURES_GROUP,
    deps=["user_sequences", "splits", "items"],
    kinds={"pytorch"},
)
def title_encoder(context: dg.AssetExecutionContext, config: TitleEncoderAssetConfig, duckdb: DuckDBResource):
    """Fine-tune the title encoder on train (query, purchased title) pairs with two hard negatives per
    pair, re-mined every epoch; reports valid query->title Recall@10 before and after. With a run_name
    (low-resource study), an encoder trained on a share of the users' pairs is saved beside the default."""
    from training.lstm_title_encoder import LstmTitleConfig
    from training.sequence_data import of_train_users, train_users
    from training.title_encoder import TitleEncoderConfig, purchase_query_pairs, train_title_encoder

    try:
        check_user_share(config.run_name, config.train_user_fraction)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    with duckdb.get_connection() as con:
        sequences = con.execute(
            "select user_id, seq_no, event_id, session_key, action, query, query_norm, search_id, item_id "
            "from user_sequences where action in ('search', 'purchase')"
        ).df()
        splits = con.execute("select target_id, user_id, split from splits").df()
        items = con.execute("select item_id, title, category from items").df()
    train_splits = of_train_users(splits, config.train_user_fraction, config.user_seed)
    train_pairs = purchase_query_pairs(sequences, train_splits, items, "train")
    valid_pairs = purchase_query_pairs(sequences, splits, items, "valid")
    user_of = splits.set_index("target_id")["user_id"]
    share = user_share_record(config, train_pairs["target_id"].map(user_of).nunique(), train_users(splits))
    if train_pairs.empty:
        raise dg.Failure(
            f"no train (query, purchased title) pairs among {config.train_user_fraction:.0%} of the training "
            "users; raise train_user_fraction"
        )
    lstm = LstmTitleConfig()
    if config.kind == "lstm":
        lstm = LstmTitleConfig(
            epochs=config.epochs or lstm.epochs,
            batch_size=config.batch_size or lstm.batch_size,
            learning_rate=config.learning_rate or lstm.learning_rate,
        )
    settings = TitleEncoderConfig(
        kind=config.kind,  # type: ignore[arg-type]
        base_model=config.base_model or None,
        # the README demo: one epoch over 1,024 sampled pairs (~3 minutes on two cores, where 3 full
        # epochs took ~20); tiny and the paper-scale presets use every pair
        epochs=config.epochs or {"tiny": 2, "demo": 1}.get(preset(), TitleEncoderConfig.epochs),
        batch_size=config.batch_size or (16 if _is_tiny() else 32),
        learning_rate=config.learning_rate or TitleEncoderConfig.learning_rate,
        margin=config.margin,
        max_pairs=config.max_pairs or (1024 if preset() == "demo" else None),
        lstm=lstm,
    )
    result = train_title_encoder(
        train_pairs, valid_pairs, items, title_encoder_dir(config.run_name), settings, log=context.log.info
    )
    (title_encoder_dir(config.run_name) / USER_SHARE_FILE).write_text(json.dumps(share, indent=2))
    return dg.MaterializeResult(
        metadata={
            **share,
            "encoder": result.spec,
            "kind": config.kind,
            "dim": result.dim,
            "train_pairs": result.train_pairs,
            "valid_pairs": result.valid_pairs,
            "epochs": result.epochs,
            "seconds": round(result.seconds, 2),
            "valid_recall@10_before": rounded_metric(result.recall_before),
            "valid_recall@10_after": rounded_metric(result.recall_after),
            "train_loss_by_epoch": dg.MetadataValue.json(result.history),
        }
    )


class TitleVectorsConfig(dg.Config):
    """Which encoder embeds the catalog titles and how the table is indexed."""

    encoder: str = Field(
        default="",
        description="Encoder spec; empty = the fine-tuned title encoder (artifacts/title_encoder). Any "
        "other spec (e.g. 'open_clip:ARCH@PRETRAINED', the paper's CLIP ablation) embeds titles with it.",
    )
    table: str = Field(
        default="",
        description="LanceDB table to write; empty = item_title_vectors, the table the evaluation and the "
        "service read. Another name (e.g. 'item_title_vectors_clip') keeps a second encoder's vectors beside "
        "it for an evaluation that names it (title_vectors_table).",
    )
    title_encoder_run: str = Field(
        default="",
        description="Embed with the title encoder trained under this run_name (artifacts/title_encoder-"
        "<run_name>, e.g. users_10 of the low-resource study) into a `table` of its own; empty: the "
        "default fine-tuned title encoder, or `encoder`.",
    )
    index_threshold: int = Field(
        default=DEFAULT_INDEX_THRESHOLD, description="Rows from which an IVF-PQ index is built."
    )
    batch_size: int = Field(default=256, description="Strings per encoder batch.")


def _title_vectors_encoder(config: TitleVectorsConfig, table: str) -> tuple[str, dict]:
    """The encoder spec that embeds the titles, and the share of training users it learnt from (empty for
    an encoder given by spec); a named run's encoder never writes the default table."""
    from training.title_encoder import load_title_encoder_spec

    if config.title_encoder_run and (config.encoder or table == ITEM_TITLE_VECTORS):
        run = config.title_encoder_run
        raise dg.Failure(
            f"title_encoder_run {run!r} embeds with that run's title encoder into a table of its own: set "
            f"`table` (e.g. item_title_vectors_{run}) and leave `encoder` empty"
        )
    if config.encoder:
        return config.encoder, {}
    directory = title_encoder_dir(config.title_encoder_run)
    try:
        spec = load_title_encoder_spec(directory)
    except FileNotFoundError as error:
        run = f" with run_name {config.title_encoder_run}" if config.title_encoder_run else ""
        raise dg.Failure(f"{error}{run}") from error
    share_file = directory / USER_SHARE_FILE
    return spec, json.loads(share_file.read_text()) if share_file.is_file() else {}


@dg.asset(
    group_name=FEATURES_GROUP,
    deps=["title_encoder", "items"],
    kinds={"lancedb"},
)
def item_title_vectors(
    context: dg.AssetExecutionContext,
    config: TitleVectorsConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
):
    """Every catalog title embedded with the fine-tuned title encoder (item_id, category, title, vector);
    only new items and changed titles are re-encoded (content hash of encoder weights + title)."""
    table = config.table or ITEM_TITLE_VECTORS
    manifest = title_vectors_manifest(table)  # checks the name before a slow encoder load
    spec, user_share = _title_vectors_encoder(config, table)
    encoder = build_encoder(spec, batch_size=config.batch_size)
    with duckdb.get_connection() as con:
        items = con.execute(
            "select item_id, category, coalesce(title, '') as title from items order by item_id"
        ).df()
    written = refresh_vectors(
        lancedb.connect(),
        table,
        items,
        key="item_id",
        text_column="title",
        encode=encoder.encode,
        fingerprint=encoder.fingerprint,
        index_threshold=config.index_threshold,
    )
    context.log.info(f"{table}: {written.encoded} of {written.rows} titles encoded, the rest unchanged")
    save_encoder_manifest(manifest, encoder, lancedb_version=written.version, user_share=user_share)
    return dg.MaterializeResult(
        metadata={
            **written.metadata(),
            "table": table,
            "dagster/row_count": written.rows,
            "encoder": encoder.spec,
            "dim": encoder.dim,
        }
    )


def expected_dim(manifest: str, field: str) -> int | None:
    path = paths().artifacts_dir / manifest
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    for part in field.split("."):
        record = record[part]
    return int(record)


def check_vector_table(
    lancedb: LanceDBResource, table_name: str, key: str, expected_keys: set[str], expected_dim: int | None
) -> dg.AssetCheckResult:
    db = lancedb.connect()
    if not table_exists(db, table_name):
        return dg.AssetCheckResult(
            passed=False, metadata={"problem": f"LanceDB table {table_name} is missing"}
        )
    table = db.open_table(table_name)
    stats = vector_table_stats(table, key)
    stored = set(table.search().select([key]).limit(None).to_arrow()[key].to_pylist())
    missing, extra = expected_keys - stored, stored - expected_keys
    problems = []
    if stats.rows != len(expected_keys) or stats.distinct_keys != stats.rows or missing or extra:
        problems.append(
            f"{stats.rows} rows / {stats.distinct_keys} distinct {key}s for {len(expected_keys)} expected; "
            f"missing e.g. {sorted(missing)[:3]}, unexpected e.g. {sorted(extra)[:3]}"
        )
    if expected_dim is not None and stats.dim != expected_dim:
        problems.append(f"dimension {stats.dim}, expected {expected_dim}")
    if stats.nan_rows:
        problems.append(f"{stats.nan_rows} vectors contain NaN")
    if stats.max_norm_error > NORM_TOLERANCE:
        problems.append(f"a vector's norm is off by {stats.max_norm_error:.2e} (tolerance {NORM_TOLERANCE})")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "rows": stats.rows,
            "expected_rows": len(expected_keys),
            "dim": stats.dim,
            "expected_dim": expected_dim if expected_dim is not None else -1,
            "max_norm_error": float(stats.max_norm_error),
            "nan_rows": stats.nan_rows,
            "problems": "; ".join(problems) or "none",
        },
    )


def catalog_item_ids(duckdb: DuckDBResource) -> set[str]:
    with duckdb.get_connection() as con:
        return {r[0] for r in con.execute("select item_id from items").fetchall()}


@dg.asset_check(
    asset="query_memory",
    description="One row per normalised query in query_listings; encoder dimension; unit norm; no NaN.",
)
def query_memory_vectors_check(duckdb: DuckDBResource, lancedb: LanceDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        queries = {
            r[0]
            for r in con.execute(
                "select distinct query_norm from query_listings where query_norm is not null"
            ).fetchall()
        }
    dim = expected_dim(f"{QUERY_MEMORY_DIR}/{QUERY_MEMORY_MANIFEST}", "dim")
    return check_vector_table(lancedb, MEMORY_TABLE, "query_norm", queries, dim)


@dg.asset_check(asset="prompt_candidates", description="One row per prompt_inputs target.")
def prompt_candidates_check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows, distinct, prompts, orphans = con.execute(
            "select (select count(*) from prompt_candidates), "
            "(select count(distinct target_id) from prompt_candidates), "
            "(select count(*) from prompt_inputs), "
            "(select count(*) from prompt_candidates anti join prompt_inputs using (target_id))"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=rows == distinct == prompts and orphans == 0,
        metadata={
            "rows": rows,
            "distinct_targets": distinct,
            "prompt_inputs_rows": prompts,
            "orphans": orphans,
        },
    )


@dg.asset_check(
    asset=ITEM_TITLE_VECTORS,
    description="One row per catalog item; title encoder dimension; unit norm; no NaN.",
)
def item_title_vectors_check(duckdb: DuckDBResource, lancedb: LanceDBResource) -> dg.AssetCheckResult:
    dim = expected_dim(TITLE_VECTORS_MANIFEST, "dim")
    return check_vector_table(lancedb, ITEM_TITLE_VECTORS, "item_id", catalog_item_ids(duckdb), dim)


feature_assets = [query_memory, title_encoder, item_title_vectors]  # + assets.id_vectors
feature_checks = [
    query_memory_vectors_check,
    prompt_candidates_check,
    item_title_vectors_check,
]
