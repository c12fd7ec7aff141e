"""LLM2SASRec and LLM2BERT4Rec: SASRec and BERT4Rec whose item embedding table starts from the items'
language-model embeddings instead of random vectors ("LLM2Sequential" in Harte et al., "Leveraging Large
Language Models for Sequential Recommendation", RecSys 2023, which reports both; docs/evaluation.md,
"The methods").

The paper reduces each item's LLM embedding to the sequential model's hidden size with PCA and uses the
result as the initial item table; training then proceeds exactly as for SASRec. Here the language-model
embeddings are the title vectors of ``item_title_vectors`` (the triplet-fine-tuned MiniLM title
encoder), and the PCA is fitted on the vocabulary items' title vectors. The projected table is rescaled
to SASRec's initial standard deviation (``initializer_range``) so that training starts at the scale
RecBole's optimiser settings expect: only the *directions* come from the text.

Rows without a text vector keep SASRec's random initialisation: padding (zero), the shared cold row
(unseen items still share one learned vector, as in every ID model here), and vocabulary items missing
from the title table. Principal components beyond what the data holds (fewer items than the hidden size)
are random as well. The saved models are plain SASRec and BERT4Rec checkpoints (model names ``LLM2SASRec``,
``LLM2BERT4Rec``); BERT4Rec's extra mask row keeps its random initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.bert4rec import Bert4RecModel
from training.sasrec import SasRecConfig, SasRecModel
from training.sequence_data import FIRST_ITEM_INDEX, PAD_INDEX, ItemVocabulary
from training.sequential import SequentialRecommender


class Llm2SasRecModel(SasRecModel):
    """SASRec with a text-initialised item table; same network, its own name in checkpoints."""

    model_name = "LLM2SASRec"


class Llm2Bert4RecModel(Bert4RecModel):
    """BERT4Rec with a text-initialised item table; same network, its own name in checkpoints."""

    model_name = "LLM2BERT4Rec"


@dataclass(frozen=True)
class TextInitialisation:
    """How the item table was initialised (written to the checkpoint's record)."""

    items_with_text: int  # vocabulary items that had a title vector
    components: int  # principal components taken from the data (the rest random)
    explained_variance: float  # share of the title vectors' variance the components keep


def pca_item_table(
    vocabulary: ItemVocabulary,
    title_vectors: np.ndarray,
    found: np.ndarray,
    config: SasRecConfig,
    seed: int,
) -> tuple[np.ndarray, TextInitialisation]:
    """Initial item table ``[len(vocabulary), hidden_size]`` from title vectors by PCA.

    ``title_vectors`` ``[n_vocabulary, text_dim]`` are aligned with ``vocabulary.item_ids`` and ``found``
    says which rows hold a vector. Rows 0 (padding) and 1 (cold) and rows without text are drawn like
    SASRec's N(0, initializer_range); padding is zeroed by the model.
    """
    rng = np.random.default_rng(seed)
    d = config.hidden_size
    table = rng.normal(0.0, config.initializer_range, size=(len(vocabulary), d)).astype(np.float32)
    text = np.asarray(title_vectors, dtype=np.float64)[found]  # [n_text, text_dim]
    components, explained = 0, 0.0
    if len(text) >= 2:
        centered = text - text.mean(axis=0, keepdims=True)
        _, singular, basis = np.linalg.svd(centered, full_matrices=False)  # basis [r, text_dim]
        components = min(d, len(singular))
        projected = centered @ basis[:components].T  # [n_text, components]
        total = float((singular**2).sum())
        explained = float((singular[:components] ** 2).sum() / total) if total > 0 else 0.0
        scale = projected.std()
        if scale > 0:
            rows = np.flatnonzero(found) + FIRST_ITEM_INDEX
            table[rows[:, None], np.arange(components)[None, :]] = (
                projected / scale * config.initializer_range
            ).astype(np.float32)
    return table, TextInitialisation(int(found.sum()), components, explained)


def text_initialised_model(
    model_class: type[SequentialRecommender],
    vocabulary: ItemVocabulary,
    title_vectors: np.ndarray,
    found: np.ndarray,
    config,
) -> tuple[SequentialRecommender, TextInitialisation]:
    """A fresh ``model_class`` (``Llm2SasRecModel``, ``Llm2Bert4RecModel``): its own initialisation, then
    the PCA title table as the vocabulary's rows of its item table."""
    model = model_class(len(vocabulary), config)  # type: ignore[call-arg]
    table, record = pca_item_table(vocabulary, title_vectors, found, config, config.seed)
    with torch.no_grad():
        model.item_embedding.weight[: len(vocabulary)].copy_(torch.from_numpy(table))
        model.item_embedding.weight[PAD_INDEX].zero_()
    return model, record
