"""Where every artifact lives: folder and file names under ``$FASHIONREC_HOME``, the LanceDB table
names, and the rule that names a run beside the default one.

This is the only place that spells them. Writers (the assets, the trainers' ``save`` functions) and
readers (the evaluation, the service, the benchmarks) all ask a :class:`HomeLayout` for a path, so a
renamed folder is renamed everywhere. Imports nothing of the project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# --- the stores under $FASHIONREC_HOME ---
DUCKDB_FILE = "fashionrec.duckdb"
LANCEDB_DIR = "lancedb"
ARTIFACTS_DIR = "artifacts"  # model checkpoints (safetensors), tokenizers, adapters, vector manifests
REPORTS_DIR = "reports"  # leaderboards, plots, study tables, benchmark outputs
DAGSTER_HOME_DIR = "dagster_home"
RAW_DIR = "raw"
SPARK_DIR = "spark"  # the Spark target's catalog (metastore_db/) and tables (tables/), docs/spark.md
SPARK_TABLES_DIR = "tables"  # under SPARK_DIR: Spark's warehouse folder, <schema>.db/<table>/*.parquet

# --- LanceDB tables ---
QUERY_MEMORY_TABLE = "query_memory"  # query vector -> its best organic listings
ITEM_TITLE_VECTORS = "item_title_vectors"  # one title vector per catalog item
ITEM_ID_VECTORS = "item_id_vectors"  # CORE's item table, one vector per catalog item
ITEM_IMAGE_VECTORS = "item_image_vectors"  # one image vector per catalog item with a readable image

# --- files inside model folders ---
WEIGHTS_FILE = "model.safetensors"  # sequence models (CORE, the baselines) and the LSTM title encoder
CONFIG_FILE = "config.json"  # a saved sequence model's or text_seq_query's configuration and record
VOCABULARY_FILE = "item_vocabulary.json"  # item id -> embedding row of a sequence model
LSTM_CONFIG_FILE = "lstm_config.json"
TOKENIZER_FILE = "tokenizer.json"
BASE_MODEL_POINTER = "base_model.json"  # which base model the LLM stages load (an id or a folder)
DOMAIN_MODEL_DIR = "model"  # the pretrained domain base model, under base_lm/
PACKAGED_MODEL_DIR = "smollm2"  # the packaged SmolLM2 converted to a Hugging Face folder, under base_lm/
PACKAGED_PROVENANCE_FILE = "provenance.json"  # which package and file it was converted from
PRETRAINING_CONFIG_FILE = "pretraining_config.json"
PRETRAINING_LOSS_PLOT = "pretraining_loss.png"
ADAPTER_CONFIG_FILE = "adapter_config.json"  # peft's names for a saved LoRA adapter
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_SELECTION_FILE = "adapter_selection.json"  # the prompts an adapter was trained on
TRAINING_SUMMARY_FILE = "training_summary.json"
LOSS_CURVE_PLOT = "loss_curve.png"
ADAPTER_CHECKPOINTS_DIR = "checkpoints"  # an adapter saved part-way, step-<n>/, while its steps are chosen
ADAPTER_TUNING_FILE = "tuning.json"  # the learning rates and steps tried, each one's valid score, the choice
QUERY_MEMORY_MANIFEST = "query_memory.json"  # the encoder and lookup sizes of the query memory
TITLE_ENCODER_MANIFEST = "title_encoder.json"  # the spec of a trained title encoder
TITLE_ENCODER_MODEL_DIR = "model"
IMAGE_TOWER_CONFIG_FILE = "image_tower.json"  # the image tower's shape and its training record
USER_SHARE_FILE = "user_share.json"  # the training users a model learnt from

# A run name (``users_10``) and an adapter name (``zs_footwear``) name a folder and suffix a method name
# (``sasrec-users_10``, ``llm_mixup-zs_footwear``): letters, digits and '_' only.
RUN_NAME = re.compile(r"^[A-Za-z0-9_]+$")
RUN_SEPARATOR = "-"


def check_run_name(name: str, what: str = "run_name") -> str:
    """``name`` when it can name a folder and suffix a method; ValueError otherwise."""
    if not RUN_NAME.match(name):
        raise ValueError(
            f"{what} {name!r} must hold only letters, digits and '_' (it names a folder and a method, e.g. "
            "sasrec-users_10)"
        )
    return name


def run_method(method: str, run_name: str) -> str:
    """The method name, and folder, of ``method`` trained under ``run_name`` (``sasrec``, ``users_10`` ->
    ``sasrec-users_10``); the method itself when unnamed."""
    return f"{method}{RUN_SEPARATOR}{run_name}" if run_name else method


def split_run_method(name: str) -> tuple[str, str]:
    """``sasrec-users_10`` -> (``sasrec``, ``users_10``); a plain method gives an empty run name."""
    method, _, run_name = name.partition(RUN_SEPARATOR)
    return method, run_name


@dataclass(frozen=True)
class ArtifactLayout:
    """Folders and files under ``$FASHIONREC_HOME/artifacts``."""

    root: Path

    @property
    def base_lm(self) -> Path:
        """The base LM step's folder: the pointer to the chosen base model (and the domain model)."""
        return self.root / "base_lm"

    @property
    def base_model_pointer(self) -> Path:
        return self.base_lm / BASE_MODEL_POINTER

    @property
    def domain_model(self) -> Path:
        return self.base_lm / DOMAIN_MODEL_DIR

    @property
    def packaged_model(self) -> Path:
        return self.base_lm / PACKAGED_MODEL_DIR

    @property
    def adapters(self) -> Path:
        return self.root / "lora_adapter"

    def adapter(self, name: str) -> Path:
        """A LoRA adapter's folder; ``name`` is its variant for the default adapters."""
        return self.adapters / check_run_name(name, "adapter name")

    @property
    def query_memory_manifest(self) -> Path:
        return self.root / "query_memory" / QUERY_MEMORY_MANIFEST

    def title_encoder(self, run_name: str = "") -> Path:
        """``title_encoder``, or ``title_encoder-<run_name>`` for a run on a share of the users."""
        return self.root / run_method("title_encoder", run_name and check_run_name(run_name))

    def title_vectors_manifest(self, table: str = ITEM_TITLE_VECTORS) -> Path:
        """The record of the encoder that wrote a title-vector table (readers must encode with the same)."""
        if not table.replace("_", "").isalnum():
            raise ValueError(f"title vector table {table!r} must be letters, digits and '_' only")
        return self.root / f"{table}.json"

    @property
    def image_encoder(self) -> Path:
        """The image tower trained against the catalog titles (``training.image_tower``)."""
        return self.root / "image_encoder"

    @property
    def image_vectors_manifest(self) -> Path:
        """The record of the image encoder that wrote ``item_image_vectors``."""
        return self.root / f"{ITEM_IMAGE_VECTORS}.json"

    def illmrec(self, variant: str) -> Path:
        """An I-LLMRec model (``training.illmrec``): ``illmrec/<variant>`` (``full`` or an ablation)."""
        return self.root / "illmrec" / variant

    @property
    def core(self) -> Path:
        """The default CORE model, whose item table is ``item_id_vectors``."""
        return self.root / "core"

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    def baseline(self, method: str, run_name: str = "") -> Path:
        """A baseline's folder: ``baselines/<method>`` or ``baselines/<method>-<run_name>``."""
        return self.baselines / run_method(method, run_name and check_run_name(run_name))


@dataclass(frozen=True)
class ReportLayout:
    """Folders under ``$FASHIONREC_HOME/reports``."""

    root: Path

    def evaluation(self, run_id: str) -> Path:
        return self.root / "evaluation" / run_id

    def study(self, name: str, stamp: str) -> Path:
        return self.root / "studies" / name / stamp

    def recbole(self, dataset: str) -> Path:
        return self.root / "recbole" / dataset

    def bench(self, name: str) -> Path:
        """A benchmark's JSON output (``bench_llm.json``)."""
        return self.root / f"bench_{name}.json"
