"""The paper's own lightweight title encoder: token embeddings + LSTM (arXiv 2410.11327 §4.4).

"We first tokenize both the query and product title. Once tokenized, the model computes the embeddings
for query and title by employing the LSTM model." The paper gives no sizes; ours are chosen to stay
small (about 4M parameters, most of them the token table) and are listed in :class:`LstmTitleConfig`.
Queries and titles share the tokenizer, the token table and the LSTM, so both live in one space and a
generated title can be matched to catalog titles. It is trained by ``training.title_encoder`` with the
same triplet loss and hard negatives as the sentence-transformers encoder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import nn

from fashionrec.layout import LSTM_CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE
from recommender.encoders import BatchedEncoder, default_device, default_minilm_path


@dataclass
class LstmTitleConfig:
    """Sizes of the LSTM title encoder (ours; the paper names the architecture but not its sizes)."""

    token_dim: int = 128  # token embedding width
    hidden_size: int = 256  # per direction
    num_layers: int = 1
    bidirectional: bool = True  # titles are bags of attributes: no reason to read them one way only
    output_dim: int = 256  # projected, L2-normalised embedding
    dropout: float = 0.1
    max_tokens: int = 64  # titles are short; longer strings are truncated
    # fine-tuning (used by training.title_encoder when this encoder is chosen)
    learning_rate: float = 1e-3  # Adam's usual rate for a model trained from scratch
    batch_size: int = 128
    epochs: int = 10


def default_tokenizer_path() -> Path:
    """MiniLM's WordPiece tokenizer: an offline, fashion-agnostic subword vocabulary."""
    return default_minilm_path() / TOKENIZER_FILE


class LstmTitleModel(nn.Module):
    """Token ids -> embeddings -> (bi)LSTM -> masked mean -> linear -> unit vector."""

    def __init__(self, vocab_size: int, pad_id: int, config: LstmTitleConfig) -> None:
        super().__init__()
        self.config = config
        self.pad_id = pad_id
        self.tokens = nn.Embedding(vocab_size, config.token_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(
            config.token_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(directions * config.hidden_size, config.output_dim)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        mask = token_ids.ne(self.pad_id)  # [b, T]
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.tokens(token_ids)), lengths, batch_first=True, enforce_sorted=False
        )
        output, _ = self.lstm(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=token_ids.size(1))
        pooled = (output * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return F.normalize(self.project(pooled), dim=-1)


class LstmTextEncoder(BatchedEncoder):
    """Tokenizer + :class:`LstmTitleModel`, trainable (``embed``) and usable as a ``TextEncoder``."""

    def __init__(
        self,
        model: LstmTitleModel,
        tokenizer: Tokenizer,
        *,
        spec: str = "lstm",
        batch_size: int = 512,
        device: str | None = None,
        show_progress: bool = True,
    ) -> None:
        self.device = device or default_device()
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(model.config.max_tokens)
        self.spec = spec
        self.dim = model.config.output_dim
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._fingerprint = None

    @classmethod
    def create(
        cls, config: LstmTitleConfig | None = None, tokenizer_path: Path | None = None, **kwargs
    ) -> LstmTextEncoder:
        """A freshly initialised encoder over the given (default: MiniLM's) tokenizer."""
        config = config or LstmTitleConfig()
        tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer_path()))
        pad_id = tokenizer.token_to_id("[PAD]")
        model = LstmTitleModel(tokenizer.get_vocab_size(), 0 if pad_id is None else pad_id, config)
        return cls(model, tokenizer, **kwargs)

    def token_ids(self, texts: list[str]) -> torch.Tensor:
        encoded = self.tokenizer.encode_batch(texts)
        width = max((len(e.ids) for e in encoded), default=1) or 1
        ids = np.full((len(texts), width), self.model.pad_id, dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)] = e.ids
        return torch.as_tensor(ids, device=self.device)

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Unit vectors with gradients (training)."""
        return self.model(self.token_ids(texts))

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        was_training = self.model.training
        self.model.eval()
        vectors = self.model(self.token_ids(texts)).float().cpu().numpy()
        self.model.train(was_training)
        return vectors

    def _weights_module(self) -> torch.nn.Module:
        return self.model

    def save(self, directory: Path) -> str:
        """Weights (safetensors), config and tokenizer in ``directory``; returns its encoder spec."""
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
            str(directory / WEIGHTS_FILE),
        )
        record = {
            "config": asdict(self.model.config),
            "vocab_size": self.model.tokens.num_embeddings,
            "pad_id": self.model.pad_id,
        }
        (directory / LSTM_CONFIG_FILE).write_text(json.dumps(record, indent=2))
        self.tokenizer.save(str(directory / TOKENIZER_FILE))
        return f"lstm:{directory}"

    @classmethod
    def load(cls, directory: Path, **kwargs) -> LstmTextEncoder:
        config_path = directory / LSTM_CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"no LSTM title encoder at {directory} (missing {LSTM_CONFIG_FILE})")
        record = json.loads(config_path.read_text())
        model = LstmTitleModel(record["vocab_size"], record["pad_id"], LstmTitleConfig(**record["config"]))
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        model.eval()
        return cls(
            model, Tokenizer.from_file(str(directory / TOKENIZER_FILE)), spec=f"lstm:{directory}", **kwargs
        )
