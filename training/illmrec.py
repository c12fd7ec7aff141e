"""I-LLMRec ("Image is All You Need: Towards Efficient and Effective LLM-Based Recommender Systems", the
method of the authors' rlqja1107/torch-I-LLMRec) over the pipeline's base LM, frozen.

Each history item is written with its image as one token (``training.illmrec_prompts``): the embedding
at ``<i_vis>`` is the adaptor's projection of the item's image vector (``item_image_vectors``; the
adaptor is the authors' Linear -> LayerNorm -> GELU -> Linear). A learnt ``[REC]`` embedding closes the
prompt; its last hidden state goes through one user projector per feature, each scored by dot product
against the item projector of that feature's item vectors:

- ``image``: the image vectors (the authors' SigLIP vectors; here ``item_image_vectors``);
- ``cf``: collaborative vectors (the authors' frozen SASRec table; here CORE's ``item_id_vectors``);
- ``text``: text vectors (the authors' sentence-transformers vectors; here ``item_title_vectors``).

A candidate's score is the mean of its feature scores. IRE trains them with BCE on the target and one
negative per feature; the negative is drawn from the target's category (the authors draw from the whole
catalog, but every method here ranks within the category, so the negative comes from where the ranking
is made). ILA is the causal-LM loss on an answer about the next item after ``[REC]`` (one forward pass
gives both losses; the causal mask keeps ``[REC]`` blind to the answer). Trained: the adaptor, ``[REC]``
and the projectors; the LM and its embedding table stay frozen (the authors' code also trains the
table).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.illmrec_names import FEATURES, VARIANTS, variant_method
from training.illmrec_prompts import IGNORE, PromptBatch

WEIGHTS_FILE = "heads.safetensors"
RECORD_FILE = "illmrec.json"


@dataclass(frozen=True)
class IllmrecConfig:
    """One I-LLMRec model: which features it ranks with, whether ILA trains it, and its sizes."""

    features: tuple[str, ...] = FEATURES
    ila: bool = True
    item_text: str = "title"  # history lines: "title" (the authors' format) or "none" (the image alone)
    max_history: int = 10  # latest item events a prompt shows
    adaptor_hidden: int = 512  # the authors' adaptor width
    projection_dim: int = 128
    ila_weight: float = 1.0
    negatives: int = 1  # random in-category negatives per target and feature (the paper: 1)

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(FEATURES)
        if unknown or not self.features:
            raise ValueError(f"features must be a non-empty subset of {FEATURES}, got {self.features}")
        if self.max_history < 1 or self.negatives < 1:
            raise ValueError("max_history and negatives must be at least 1")

    @classmethod
    def of_variant(cls, variant: str, **fields) -> IllmrecConfig:
        """The config of a named ablation (:data:`VARIANTS`) with ``fields`` for the rest."""
        variant_method(variant)  # ValueError naming the variants
        features, ila = VARIANTS[variant]
        return cls(features=features, ila=ila, **fields)


@dataclass
class ItemFeatures:
    """Per catalog row, each feature's item vector (zeros where an item has none) and whether it has one."""

    item_ids: np.ndarray  # object [n]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> float32 [n, dim]
    found: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> bool [n]

    def dims(self) -> dict[str, int]:
        return {name: int(matrix.shape[1]) for name, matrix in self.vectors.items()}

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.vectors[name])


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, outputs))


class IllmrecHeads(nn.Module):
    """What I-LLMRec trains around the frozen LM: the image adaptor, ``[REC]`` and the projectors."""

    def __init__(self, config: IllmrecConfig, llm_dim: int, feature_dims: dict[str, int], embed_std: float):
        super().__init__()
        self.config = config
        image_dim = feature_dims["image"]
        self.adaptor = nn.Sequential(
            nn.Linear(image_dim, config.adaptor_hidden),
            nn.LayerNorm(config.adaptor_hidden),
            nn.GELU(),
            nn.Linear(config.adaptor_hidden, llm_dim),
        )
        # start the visual tokens at the scale of the word embeddings they stand among
        nn.init.normal_(self.adaptor[-1].weight, std=embed_std / config.adaptor_hidden**0.5)
        nn.init.zeros_(self.adaptor[-1].bias)
        self.rec = nn.Parameter(torch.randn(llm_dim) * embed_std)
        d = config.projection_dim
        self.user = nn.ModuleDict({name: _mlp(llm_dim, d, d) for name in config.features})
        self.item = nn.ModuleDict({name: _mlp(feature_dims[name], d, d) for name in config.features})

    def user_states(
        self, lm, batch: PromptBatch, image_vectors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[REC]``'s last hidden state per prompt ``[B, llm_dim]`` (float32), and the ILA loss on the
        batch's answers (0 when it has none). ``image_vectors`` are the catalog's, by row."""
        embedding = lm.get_input_embeddings()
        device = embedding.weight.device
        words = embedding(batch.input_ids.to(device))
        visual = self.adaptor(image_vectors[batch.vis_rows].to(device)).to(words.dtype)
        rows = torch.arange(len(batch.rec_positions), device=device)
        embeds = words.index_put((batch.vis_index[0].to(device), batch.vis_index[1].to(device)), visual)
        embeds = embeds.index_put(
            (rows, batch.rec_positions.to(device)), self.rec.to(words.dtype).expand(len(rows), -1)
        )
        hidden = lm.base_model(
            inputs_embeds=embeds, attention_mask=batch.attention_mask.to(device)
        ).last_hidden_state
        states = hidden[rows, batch.rec_positions.to(device)].float()
        labels = batch.labels.to(device)
        answered = labels != IGNORE
        if not bool(answered.any()):
            return states, torch.zeros((), device=device)
        # logits only where an answer token is predicted: the vocabulary projection is most of the cost
        logits = lm.get_output_embeddings()(hidden[answered]).float()
        return states, nn.functional.cross_entropy(logits, labels[answered])

    def item_embeddings(self, name: str, vectors: torch.Tensor) -> torch.Tensor:
        return self.item[name](vectors.to(self.rec.device))

    def scores(self, states: torch.Tensor, items: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean over the features of user·item dot products: ``[B, n]`` for projected item matrices
        ``items[feature]`` ``[n, d]``."""
        per_feature = [self.user[name](states) @ items[name].T for name in self.config.features]
        return torch.stack(per_feature).mean(dim=0)

    def ire_loss(
        self, states: torch.Tensor, positives: dict[str, torch.Tensor], negatives: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """BCE on each feature's positive (``[B, dim]`` raw vectors) and negatives (``[B, k, dim]``), the
        positives and the negatives weighted alike, summed over the features."""
        loss = torch.zeros((), device=states.device)
        bce = nn.functional.binary_cross_entropy_with_logits
        for name in self.config.features:
            user = self.user[name](states)
            pos = (user * self.item_embeddings(name, positives[name])).sum(-1)
            neg = (user[:, None, :] * self.item_embeddings(name, negatives[name])).sum(-1)
            loss = loss + bce(pos, torch.ones_like(pos)) + bce(neg, torch.zeros_like(neg))
        return loss


def save_heads(heads: IllmrecHeads, directory: Path, record: dict) -> None:
    """The trained heads (safetensors) and their record: config, sizes and the training's facts."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in heads.state_dict().items()}, directory / WEIGHTS_FILE
    )
    (directory / RECORD_FILE).write_text(
        json.dumps({**record, "config": asdict(heads.config)}, indent=2, default=str)
    )


def load_heads(directory: Path) -> tuple[IllmrecHeads, dict]:
    """Heads saved by :func:`save_heads` and their record; FileNotFoundError naming the step that trains
    them."""
    from safetensors.torch import load_file

    path = directory / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no I-LLMRec model in {directory}; train it with `fashionrec run 'key:illmrec'`"
        )
    record = json.loads(path.read_text())
    saved = record["config"]
    config = IllmrecConfig(**{**saved, "features": tuple(saved["features"])})
    heads = IllmrecHeads(config, record["llm_dim"], record["feature_dims"], embed_std=1.0)
    heads.load_state_dict(load_file(directory / WEIGHTS_FILE))
    return heads, record
