"""Title embedding model (arXiv 2410.11327 §4.4): triplet loss with two hard negatives per positive pair.

"Items that were purchased in the same search queries should be similar in embedding space." A positive
pair is (query, title of the item purchased from that query) from the train split; logs without searches
give (earlier purchase's title, next purchased title) pairs instead, and logs with neither keep the untuned
encoder (``training.title_pairs.title_pairs``). Each positive is paired with two hard negatives, re-mined
with the current model at the start of every epoch:

- the title closest to the query that is not a positive of that query -> triplet (query, title, neg title)
- the query closest to the title that is not a positive of that title -> triplet (title, query, neg query)

The default model is the bundled MiniLM (sentence-transformers), fine-tuned end to end; the paper's own
token-embedding + LSTM encoder (``recommender.lstm_encoder``) trains in the same loop. The loop is
plain PyTorch over the model's forward pass rather than ``SentenceTransformerTrainer``, because the
negatives change every epoch and the second triplet swaps anchor and positive roles, neither of which
the trainer's fixed-column datasets express.

Quality is reported as query -> purchased-title Recall@10 on the valid split: each valid (query,
purchased item) ranks the item among all catalog items of its category by title similarity.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fashionrec.layout import TITLE_ENCODER_MANIFEST, TITLE_ENCODER_MODEL_DIR, USER_SHARE_FILE
from recommender.encoders import SentenceTransformerEncoder, TextEncoder, default_device, default_minilm_path
from recommender.lstm_encoder import LstmTextEncoder, LstmTitleConfig
from recommender.precision import fast_autocast
from training.title_pairs import NO_PAIRS, QUERY_PAIRS, mine_hard_negatives, title_pairs, title_recall
from training.user_share import EVERY_USER, UserShare, count_train_users


@dataclass
class TitleEncoderConfig:
    """Fine-tuning settings; the paper gives none beyond triplet loss + two hard negatives."""

    kind: Literal["sentence_transformers", "lstm"] = "sentence_transformers"
    base_model: str | None = None  # sentence-transformers directory; None = the bundled MiniLM
    epochs: int = 3
    batch_size: int = 32  # pairs per step (each brings 2 triplets)
    learning_rate: float = 2e-5  # sentence-transformers' fit() default for fine-tuning
    warmup_ratio: float = 0.1  # linear warm-up share of steps, as in the sentence-transformers examples
    # cosine-distance margin; FaceNet (Schroff et al. 2015) uses 0.2 on unit-length embeddings
    margin: float = 0.2
    # skip negatives within 5% of the positive's similarity (likely false negatives): sentence-transformers'
    # recommended mining filter; 0 = the paper's rule exactly
    false_negative_margin: float = 0.05
    max_pairs: int | None = None  # cap on train pairs per epoch (sampled), for quick runs
    recall_k: int = 10
    seed: int = 0
    lstm: LstmTitleConfig = field(default_factory=LstmTitleConfig)


class _SentenceTransformerTrainable:
    """A SentenceTransformer seen as: ``embed`` with gradients, ``encoder`` for inference, ``save``."""

    def __init__(self, path: str | None, device: str) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.util import batch_to_device

        self._batch_to_device = batch_to_device
        self.path = Path(path) if path else default_minilm_path()
        self.model = SentenceTransformer(str(self.path), device=device)
        self.device = device

    def parameters(self):
        return self.model.parameters()

    def train(self) -> None:
        self.model.train()

    def embed(self, texts: list[str]) -> torch.Tensor:
        features = self._batch_to_device(self.model.preprocess(texts), self.device)
        return F.normalize(self.model(features)["sentence_embedding"], dim=-1)

    def encoder(self) -> TextEncoder:
        return SentenceTransformerEncoder.from_model(
            self.model, f"sentence_transformers:{self.path}", show_progress=False
        )

    def save(self, directory: Path) -> str:
        self.model.save(str(directory), safe_serialization=True)
        return f"sentence_transformers:{directory}"


class _LstmTrainable:
    def __init__(self, config: LstmTitleConfig, device: str) -> None:
        self.text_encoder = LstmTextEncoder.create(config, device=device, show_progress=False)

    def parameters(self):
        return self.text_encoder.model.parameters()

    def train(self) -> None:
        self.text_encoder.model.train()

    def embed(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder.embed(texts)

    def encoder(self) -> TextEncoder:
        self.text_encoder._fingerprint = None  # weights moved since the last fingerprint
        return self.text_encoder

    def save(self, directory: Path) -> str:
        return self.text_encoder.save(directory)


@dataclass
class TitleEncoderResult:
    spec: str
    dim: int
    recall_before: float
    recall_after: float
    train_pairs: int
    valid_pairs: int
    epochs: int
    seconds: float
    history: list[dict[str, float]]
    pairs_source: str = QUERY_PAIRS  # what the pairs were (training.title_pairs); records before it: query

    def save(self, directory: Path) -> Path:
        path = directory / TITLE_ENCODER_MANIFEST
        record = asdict(self)
        # stored relative so the artifacts directory can move
        record["spec"] = self.spec.replace(str(directory) + "/", "./")
        path.write_text(json.dumps(record, indent=2))
        return path


def load_title_encoder_spec(directory: Path) -> str:
    """The encoder spec of a saved title encoder (for ``recommender.encoders.build_encoder``)."""
    path = directory / TITLE_ENCODER_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"no trained title encoder at {directory}; materialize the title_encoder asset"
        )
    spec = json.loads(path.read_text())["spec"]
    kind, _, location = spec.partition(":")
    return f"{kind}:{directory / location[2:]}" if location.startswith("./") else spec


def _linear_warmup(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def train_title_encoder(
    train_pairs: pd.DataFrame,
    valid_pairs: pd.DataFrame,
    items: pd.DataFrame,
    output_dir: Path,
    config: TitleEncoderConfig | None = None,
    device: str | None = None,
    log=print,
    pairs_source: str = QUERY_PAIRS,
) -> TitleEncoderResult:
    """Fine-tune, save to ``output_dir/model`` and report valid Recall@k before and after. Without train
    pairs, the model is saved as it was loaded (untuned). ``pairs_source`` goes into the record."""
    config = config or TitleEncoderConfig()
    device = device or default_device()
    start_time = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.kind == "sentence_transformers":
        trainable = _SentenceTransformerTrainable(config.base_model, device)
        lr, batch_size, epochs = config.learning_rate, config.batch_size, config.epochs
    elif config.kind == "lstm":
        trainable = _LstmTrainable(config.lstm, device)
        lr, batch_size, epochs = config.lstm.learning_rate, config.lstm.batch_size, config.lstm.epochs
    else:
        raise ValueError(
            f"unknown title encoder kind {config.kind!r}; expected 'sentence_transformers' or 'lstm'"
        )

    catalog = items.loc[items["title"].notna(), ["item_id", "title", "category"]].reset_index(drop=True)
    titles = pd.Index(pd.unique(catalog["title"]))
    pairs = train_pairs.loc[train_pairs["title"].isin(titles)].reset_index(drop=True)
    queries = pd.Index(pd.unique(pairs["query"]))
    pair_query = queries.get_indexer(pairs["query"])
    pair_title = titles.get_indexer(pairs["title"])
    title_of_item = titles.get_indexer(catalog["title"])

    steps_per_epoch = math.ceil(min(len(pairs), config.max_pairs or len(pairs)) / batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _linear_warmup(s, int(config.warmup_ratio * total_steps), total_steps)
    )
    history: list[dict[str, float]] = []
    recall_before = float("nan")
    for epoch in range(1, epochs + 1 if len(pairs) else 1):
        encoder = trainable.encoder()
        title_vectors = encoder.encode(list(titles))
        if epoch == 1:
            recall_before = title_recall(
                encoder, valid_pairs, catalog, config.recall_k, title_vectors[title_of_item]
            )
            log(f"title encoder: valid recall@{config.recall_k} before fine-tuning {recall_before:.4f}")
        neg_title, neg_query = mine_hard_negatives(
            encoder.encode(list(queries)), title_vectors, pair_query, pair_title, config.false_negative_margin
        )
        order = rng.permutation(len(pairs))[: config.max_pairs or len(pairs)]
        trainable.train()
        total, steps = 0.0, 0
        for offset in tqdm(
            range(0, len(order), batch_size), desc=f"title epoch {epoch}", unit="batch", leave=False
        ):
            batch = order[offset : offset + batch_size]
            with fast_autocast(torch.device(device)):  # bf16 products where native, weights in float32
                loss = _pair_loss(
                    trainable,
                    queries,
                    titles,
                    pair_query[batch],
                    pair_title[batch],
                    neg_title[batch],
                    neg_query[batch],
                    config.margin,
                )
            if loss is None:
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
            steps += 1
        history.append({"epoch": epoch, "train_loss": total / max(1, steps)})
        log(f"title encoder epoch {epoch}: triplet loss {total / max(1, steps):.4f}")

    encoder = trainable.encoder()
    if math.isnan(recall_before):
        recall_before = title_recall(encoder, valid_pairs, catalog, config.recall_k)
    recall_after = title_recall(encoder, valid_pairs, catalog, config.recall_k)
    log(f"title encoder: valid recall@{config.recall_k} after fine-tuning {recall_after:.4f}")
    output_dir.mkdir(parents=True, exist_ok=True)
    spec = trainable.save(output_dir / TITLE_ENCODER_MODEL_DIR)
    result = TitleEncoderResult(
        spec=spec,
        dim=encoder.dim,
        recall_before=recall_before,
        recall_after=recall_after,
        train_pairs=len(pairs),
        valid_pairs=len(valid_pairs),
        epochs=len(history),
        seconds=time.perf_counter() - start_time,
        history=history,
        pairs_source=pairs_source,
    )
    result.save(output_dir)
    return result


def _pair_loss(
    trainable,
    queries: pd.Index,
    titles: pd.Index,
    q: np.ndarray,
    t: np.ndarray,
    neg_t: np.ndarray,
    neg_q: np.ndarray,
    margin: float,
) -> torch.Tensor | None:
    """Sum of the two triplet losses of a batch; triplets whose negative is missing are left out."""
    has_nt, has_nq = neg_t >= 0, neg_q >= 0
    if not (has_nt.any() or has_nq.any()):
        return None
    texts_q = [queries[i] for i in q] + [queries[i] for i in neg_q[has_nq]]
    texts_t = [titles[i] for i in t] + [titles[i] for i in neg_t[has_nt]]
    emb_q = trainable.embed(texts_q)
    emb_t = trainable.embed(texts_t)
    anchor_q, negative_q = emb_q[: len(q)], emb_q[len(q) :]
    anchor_t, negative_t = emb_t[: len(t)], emb_t[len(t) :]

    def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 - (a * b).sum(dim=-1)

    loss = anchor_q.new_zeros(())
    if has_nt.any():  # (query, purchased title, nearest non-positive title)
        loss = loss + F.triplet_margin_with_distance_loss(
            anchor_q[has_nt], anchor_t[has_nt], negative_t, distance_function=cosine_distance, margin=margin
        )
    if has_nq.any():  # (purchased title, query, nearest non-positive query)
        loss = loss + F.triplet_margin_with_distance_loss(
            anchor_t[has_nq], anchor_q[has_nq], negative_q, distance_function=cosine_distance, margin=margin
        )
    return loss


def fit_title_encoder(
    sequences: pd.DataFrame,
    splits: pd.DataFrame,
    items: pd.DataFrame,
    output_dir: Path,
    config: TitleEncoderConfig,
    share: UserShare = EVERY_USER,
    log=print,
) -> tuple[TitleEncoderResult, dict]:
    """Train on the pairs of the ``share``'s train targets (``training.title_pairs.title_pairs``: query
    pairs, else purchase-sequence pairs, else none and the encoder stays untuned), measure on every
    user's valid pairs of the same kind, and save the encoder with the record of its users
    (``USER_SHARE_FILE``).

    ``sequences`` are the search and purchase rows of ``user_sequences``; ``splits`` gives target_id,
    user_id and split; ``items`` item_id, title and category. Returns the result and the share record.
    """
    pairs = title_pairs(sequences, splits, items, share.of_splits(splits))
    if pairs.train.empty and pairs.source != NO_PAIRS:  # every user has some, so the share is below 1
        raise ValueError(
            f"no train {pairs.description} among the {share.fraction:.0%} of the training users of run "
            f"{share.run_name!r}, while all of them give {pairs.available}; raise train_user_fraction"
        )
    if pairs.source == NO_PAIRS:
        log(
            "title encoder: no train purchase follows a search or an earlier purchase of its user, so "
            "there is nothing to fine-tune on; the untuned encoder is saved"
        )
    elif pairs.source != QUERY_PAIRS:
        log(f"title encoder: no (query, purchased title) pairs in the logs; training on {pairs.description}")
    user_of = splits.set_index("target_id")["user_id"]
    record = share.record(pairs.train["target_id"].map(user_of).nunique(), count_train_users(splits))
    result = train_title_encoder(
        pairs.train, pairs.valid, items, output_dir, config, log=log, pairs_source=pairs.source
    )
    (output_dir / USER_SHARE_FILE).write_text(json.dumps(record, indent=2))
    return result, record


def load_title_encoder_record(directory: Path) -> tuple[str, dict]:
    """The spec of a saved title encoder and the record of the training users it learnt from (empty for
    one saved without it)."""
    share_file = directory / USER_SHARE_FILE
    record = json.loads(share_file.read_text()) if share_file.is_file() else {}
    return load_title_encoder_spec(directory), record


def load_title_encoder_pairs(directory: Path) -> tuple[str, int]:
    """Which pairs a saved title encoder trained on (``pairs_source``: query, purchase_sequence or none)
    and how many; a record saved before pairs had kinds trained on query pairs."""
    load_title_encoder_spec(directory)  # the error for a missing encoder
    record = json.loads((directory / TITLE_ENCODER_MANIFEST).read_text())
    return record.get("pairs_source", QUERY_PAIRS), int(record.get("train_pairs", 0))
