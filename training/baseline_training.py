"""One run of the ``baselines`` assets: the selected baselines trained from what the run read once.

The sequence models that train with the same item table share one
:class:`~training.baselines.SequenceData` (CORE's examples, cut to the run's share of the training users),
built on the first of them; ``text_seq_query`` is fitted on valid with the encoder that wrote the title
vectors. Each is saved under ``artifacts/baselines/<method>``, ``<method>-<run_name>`` for a run on a share
of the users, beside the default model and never over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fashionrec.layout import ITEM_TITLE_VECTORS, ArtifactLayout
from fashionrec.presets import SequenceBudget
from recommender.retrieval import VectorCatalog
from recommender.vector_store import table_exists
from training.baselines import SequenceData, baseline_settings, item_table_of, train_and_save_baseline
from training.sequential import SequentialConfig
from training.text_seq_query import (
    MODEL_NAME,
    TITLE_OPTIONS,
    check_title_share,
    fit_text_seq_query,
    manifest_encoder,
    read_title_manifest,
)
from training.user_share import EVERY_USER, UserShare, count_train_users

if TYPE_CHECKING:
    import lancedb


@dataclass(frozen=True)
class BaselineInputs:
    """What the baselines read: ``warehouse.marts.read_sequence_marts``' frames and, for
    ``text_seq_query``, the valid rows of ``prompt_inputs`` with the items of each category."""

    sequences: pd.DataFrame
    splits: pd.DataFrame
    items: pd.DataFrame
    valid_inputs: pd.DataFrame | None = None
    catalog: Mapping[str, np.ndarray] | None = None  # recommender.ranking.catalog_by_category(items)


@dataclass(frozen=True)
class BaselineOptions:
    """How a run trains: the preset's budget with overrides, the share of training users, and what
    ``text_seq_query`` tries. Named as the ``baselines`` assets' config fields, which fill them."""

    budget: SequenceBudget
    share: UserShare = EVERY_USER
    epochs: int | None = None
    stopping_step: int | None = None
    train_batch_size: int | None = None
    train_targets: str = "all_items"
    item_table: str | None = None  # None: each model's own (its config's item_table)
    title_vectors_table: str = ""  # empty: item_title_vectors
    title_options: Sequence[int] = TITLE_OPTIONS
    max_valid_targets: int = 300

    @property
    def table(self) -> str:
        """The title-vector table that llm2sasrec, llmseqsim and text_seq_query read."""
        return self.title_vectors_table or ITEM_TITLE_VECTORS

    @property
    def settings(self) -> dict[str, Any]:
        return baseline_settings(
            self.budget, self.epochs, self.stopping_step, self.train_batch_size, self.item_table
        )


def open_title_vectors(db: lancedb.DBConnection, table: str) -> VectorCatalog:
    """The title vectors of ``table``; FileNotFoundError saying how to write them if there are none."""
    if not table_exists(db, table):
        raise FileNotFoundError(
            f"no title vector table {table!r}; materialize item_title_vectors first (with config `table: "
            f"{table}` for another table than item_title_vectors)"
        )
    return VectorCatalog.from_table(db.open_table(table))


def sequence_data_on_share(
    inputs: BaselineInputs, options: BaselineOptions, item_table: str, log: Callable[[str], Any] = print
) -> tuple[SequenceData, dict[str, Any]]:
    """The sequence models' examples on the run's share of the training users with ``item_table``'s rows,
    and the record of which users those are (``UserShare.record``, saved with every model)."""
    share = options.share
    data = SequenceData.from_marts(
        inputs.sequences,
        inputs.splits,
        inputs.items,
        train_targets=options.train_targets,
        share=share,
        item_table=item_table,
    )
    record = share.record(pd.unique(data.train.user_ids).size, count_train_users(inputs.splits))
    log(
        f"training on {record['train_users_used']} of {record['train_users_available']} training users "
        f"({share.fraction:.0%}), {len(data.train)} train examples, {item_table} item table "
        f"({len(data.vocabulary.item_ids)} rows)"
    )
    return data, record


def _fit_text_seq_query(
    inputs: BaselineInputs,
    title_vectors: VectorCatalog | None,
    options: BaselineOptions,
    layout: ArtifactLayout,
    log: Callable[[str], Any],
) -> dict[str, Any]:
    table = options.table
    if title_vectors is None or inputs.valid_inputs is None or inputs.catalog is None:
        raise ValueError(
            f"{MODEL_NAME} is fitted on prompt_inputs' valid rows, the catalog and the title vectors of "
            f"{table!r}; give all three"
        )
    manifest = read_title_manifest(layout.title_vectors_manifest(table))
    check_title_share(options.share, table, manifest.get("user_share", {}))
    method = options.share.method(MODEL_NAME)
    _, facts = fit_text_seq_query(
        inputs.valid_inputs,
        inputs.catalog,
        manifest_encoder(manifest, table),
        title_vectors,
        manifest,
        layout.baseline(method),
        method=method,
        title_vectors_table=table,
        options=options.title_options,
        max_valid_targets=options.max_valid_targets,
        log=log,
    )
    return facts


def train_baselines(
    chosen: Sequence[str],
    inputs: BaselineInputs,
    title_vectors: VectorCatalog | None,
    options: BaselineOptions,
    layout: ArtifactLayout,
    log: Callable[[str], Any] = print,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Train (or fit on valid) each method of ``chosen`` in turn and save it in its folder of ``layout``;
    yields the method with what a run shows of it (:func:`training.baselines.train_and_save_baseline`,
    :func:`training.text_seq_query.fit_text_seq_query`) as soon as it is saved.

    ``title_vectors`` (:func:`open_title_vectors` of ``options.table``) are needed by llm2sasrec,
    llmseqsim and text_seq_query only.
    """
    built: dict[str, tuple[SequenceData, dict[str, Any]]] = {}  # item table -> examples, share record
    for name in chosen:
        if name == MODEL_NAME:
            facts = _fit_text_seq_query(inputs, title_vectors, options, layout, log)
        else:
            # llmseqsim has no table of its own: it reads the frames of any
            table = item_table_of(name, options.settings) or next(iter(built), SequentialConfig.item_table)
            if table not in built:
                built[table] = sequence_data_on_share(inputs, options, table, log)
            data, record = built[table]
            method = options.share.method(name)
            facts = train_and_save_baseline(
                name,
                data,
                options.settings,
                title_vectors,
                layout.baseline(method),
                {"method": method, **record},
                log,
            )
        yield name, facts
