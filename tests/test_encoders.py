"""Text encoders: one interface, unit-length float32 output, batching and de-duplication."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recommender.encoder_specs import build_encoder
from recommender.encoders import BatchedEncoder, OpenClipEncoder, SentenceTransformerEncoder, TextEncoder


class RecordingEncoder(BatchedEncoder):
    """Counts the strings it is asked to encode; vectors depend only on the string."""

    def __init__(self, batch_size: int) -> None:
        self.spec, self.dim, self.batch_size, self.show_progress = "recording", 4, batch_size, False
        self.module = torch.nn.Linear(1, 1)
        self._fingerprint = None
        self.batches: list[list[str]] = []

    def _encode_batch(self, texts):
        self.batches.append(texts)
        return np.array([[len(t), 1.0, t.count("a"), 2.0] for t in texts], dtype=np.float64)

    def _weights_module(self):
        return self.module


def test_identical_strings_are_encoded_once_in_batches():
    encoder = RecordingEncoder(batch_size=2)
    texts = ["red bag", "shoe", "red bag", "tote", "shoe", "scarf"]
    vectors = encoder.encode(texts)
    assert [len(b) for b in encoder.batches] == [2, 2]
    assert sorted(t for b in encoder.batches for t in b) == ["red bag", "scarf", "shoe", "tote"]
    assert vectors.dtype == np.float32 and vectors.shape == (6, 4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert encoder.encode([]).shape == (0, 4)
    with pytest.raises(TypeError, match="text 1"):
        encoder.encode(["ok", None])


def test_fingerprint_follows_the_weights():
    encoder, twin = RecordingEncoder(batch_size=8), RecordingEncoder(batch_size=8)
    twin.module.load_state_dict(encoder.module.state_dict())
    before = encoder.fingerprint
    assert twin.fingerprint == before
    with torch.no_grad():
        encoder.module.weight.add_(1.0)
    encoder._fingerprint = None
    assert encoder.fingerprint != before


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    return build_encoder("sentence_transformers", show_progress=False)


def test_default_minilm_encoder(minilm):
    assert isinstance(minilm, TextEncoder)
    assert minilm.dim == 384 and minilm.spec.startswith("sentence_transformers:")
    vectors = minilm.encode(
        ["red leather handbag", "crimson leather purse", "running shoes men", "red leather handbag"]
    )
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # paraphrase closer than another product
    assert minilm.fingerprint == minilm.fingerprint and len(minilm.fingerprint) == 32


def test_open_clip_random_small_model_and_a_local_checkpoint(tmp_path):
    encoder = build_encoder("open_clip:ViT-S-32", batch_size=2, device="cpu", show_progress=False)
    assert isinstance(encoder, OpenClipEncoder)
    assert encoder.spec == "open_clip:ViT-S-32" and encoder.dim == 384
    texts = ["red dress", "black boots", "red dress", "tote bag", "scarf"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])

    # the same architecture from a checkpoint file gives the same vectors
    checkpoint = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(checkpoint))
    loaded = build_encoder(f"open_clip:ViT-S-32@{checkpoint}", device="cpu", show_progress=False)
    assert loaded.spec == f"open_clip:ViT-S-32@{checkpoint}"
    np.testing.assert_allclose(loaded.encode(texts), vectors, atol=1e-5)
    assert loaded.fingerprint == encoder.fingerprint


def test_bad_specs_say_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder spec"):
        build_encoder("word2vec:whatever")
    with pytest.raises(ValueError, match="architecture"):
        build_encoder("open_clip:")
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        build_encoder("open_clip:NoSuchNet-99")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_encoder(f"sentence_transformers:{tmp_path / 'missing'}")
    with pytest.raises(FileNotFoundError, match="LSTM"):
        build_encoder(f"lstm:{tmp_path}")
