"""The title side of mixup retrieval, group ``features``: the title encoder fine-tuned with the paper's
triplet loss and hard negatives (§4.4, ``training.title_encoder``), and every catalog title embedded with
it into LanceDB (``item_title_vectors``), refreshed incrementally.

A ``run_name`` trains the encoder on a share of the training users for the low-resource study and saves it
beside the default one; its vectors go to a table of their own, so the evaluation and the service keep
reading the default table.
"""

# torch, sentence-transformers and the training code are imported inside the assets that run them: every
# `fashionrec` command and `dagster dev` load this module first, and those imports take seconds each.
import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.config import UserShareConfig, user_errors
from assets.query_memory import rounded_metric
from assets.resources import LanceDBResource, PipelineSettings
from assets.vector_checks import FEATURES_GROUP
from fashionrec.layout import ITEM_TITLE_VECTORS, ArtifactLayout
from fashionrec.presets import TitleEncoderBudget
from recommender.encoder_specs import build_encoder
from recommender.encoders import save_encoder_manifest
from recommender.vector_store import DEFAULT_INDEX_THRESHOLD, refresh_vectors


class TitleEncoderAssetConfig(UserShareConfig):
    """Title encoder fine-tuning (paper §4.4 "Title Embedding Model"); unset fields take the preset's
    budget."""

    kind: str = Field(
        default="sentence_transformers",
        description="'sentence_transformers' (fine-tune base_model) or 'lstm' (the paper's token "
        "embedding + LSTM encoder, trained from scratch).",
    )
    base_model: str = Field(
        default="", description="sentence-transformers directory; empty = bundled MiniLM."
    )
    epochs: int | None = Field(
        default=None, description="Epochs, each re-mining hard negatives; default: the preset's (LSTM: 10)."
    )
    batch_size: int | None = Field(default=None, description="Pairs per step; default: the preset's.")
    learning_rate: float | None = Field(default=None, description="Default 2e-5 (MiniLM) / 1e-3 (LSTM).")
    margin: float = Field(default=0.2, description="Triplet margin in cosine distance.")
    max_pairs: int | None = Field(
        default=None, description="Cap on train pairs per epoch (sampled); default: the preset's."
    )


def title_encoder_settings(config: TitleEncoderAssetConfig, budget: TitleEncoderBudget):
    """The training settings: the config's fields where set, else the preset's budget (MiniLM) or the
    LSTM's own defaults."""
    from recommender.lstm_encoder import LstmTitleConfig
    from training.title_encoder import TitleEncoderConfig

    lstm = LstmTitleConfig()
    if config.kind == "lstm":
        lstm = LstmTitleConfig(
            epochs=config.epochs or lstm.epochs,
            batch_size=config.batch_size or lstm.batch_size,
            learning_rate=config.learning_rate or lstm.learning_rate,
        )
    return TitleEncoderConfig(
        kind=config.kind,  # type: ignore[arg-type]
        base_model=config.base_model or None,
        epochs=config.epochs or budget.epochs,
        batch_size=config.batch_size or budget.batch_size,
        learning_rate=config.learning_rate or TitleEncoderConfig.learning_rate,
        margin=config.margin,
        max_pairs=config.max_pairs or budget.max_pairs,
        lstm=lstm,
    )


@dg.asset(group_name=FEATURES_GROUP, deps=["user_sequences", "splits", "items"], kinds={"pytorch"})
def title_encoder(
    context: dg.AssetExecutionContext,
    config: TitleEncoderAssetConfig,
    duckdb: DuckDBResource,
    settings: PipelineSettings,
):
    """Fine-tune the title encoder with two hard negatives per pair, re-mined every epoch, on train (query,
    purchased title) pairs, else (earlier purchase's title, next title) pairs, else none: kept untuned
    (pairs_source); valid Recall@10 before and after. A run_name saves a share's encoder by the default."""
    from training.title_encoder import fit_title_encoder

    share = config.user_share()
    # ordered reads: the pairs' order is the training order (unordered, the encoder varied run to run)
    with duckdb.get_connection() as con:
        sequences = con.execute(
            "select user_id, seq_no, event_id, session_key, action, query, query_norm, search_id, item_id "
            "from user_sequences where action in ('search', 'purchase') order by user_id, seq_no"
        ).df()
        splits = con.execute("select target_id, user_id, split from splits order by target_id").df()
        items = con.execute("select item_id, title, category from items order by item_id").df()
    with user_errors():
        result, record = fit_title_encoder(
            sequences,
            splits,
            items,
            settings.artifacts.title_encoder(config.run_name),
            title_encoder_settings(config, settings.budgets.title_encoder),
            share,
            log=context.log.info,
        )
    return dg.MaterializeResult(
        metadata={
            **record,
            "encoder": result.spec,
            "kind": config.kind,
            "dim": result.dim,
            "pairs_source": result.pairs_source,
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


def title_vectors_source(config: TitleVectorsConfig, table: str, layout: ArtifactLayout) -> tuple[str, dict]:
    """The encoder spec that embeds the titles, and the share of training users it learnt from (empty for
    an encoder given by spec); a named run's encoder never writes the default table."""
    from training.title_encoder import load_title_encoder_record

    run = config.title_encoder_run
    if run and (config.encoder or table == ITEM_TITLE_VECTORS):
        raise ValueError(
            f"title_encoder_run {run!r} embeds with that run's title encoder into a table of its own: set "
            f"`table` (e.g. item_title_vectors_{run}) and leave `encoder` empty"
        )
    if config.encoder:
        return config.encoder, {}
    try:
        return load_title_encoder_record(layout.title_encoder(run))
    except FileNotFoundError as error:
        raise ValueError(f"{error}{f' with run_name {run}' if run else ''}") from error


@dg.asset(group_name=FEATURES_GROUP, deps=["title_encoder", "items"], kinds={"lancedb"})
def item_title_vectors(
    context: dg.AssetExecutionContext,
    config: TitleVectorsConfig,
    duckdb: DuckDBResource,
    lancedb: LanceDBResource,
    settings: PipelineSettings,
):
    """Every catalog title embedded with the fine-tuned title encoder (item_id, category, title, vector);
    only new items and changed titles are re-encoded (content hash of encoder weights + title)."""
    table = config.table or ITEM_TITLE_VECTORS
    with user_errors():
        manifest = settings.artifacts.title_vectors_manifest(table)  # checks the name before a slow load
        spec, user_share = title_vectors_source(config, table, settings.artifacts)
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
    return dg.MaterializeResult(metadata=written.encoded_metadata(encoder.spec, encoder.dim))


title_vector_assets = [title_encoder, item_title_vectors]
