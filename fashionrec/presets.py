"""Every preset's budget for every stage, as plain numbers, in one place.

A preset names a scale: ``tiny`` (the test suite, seconds per stage), ``demo`` (the README's
``make demo``, about 15 minutes on two CPU cores) and the paper's four data sets (Table 1 of
arXiv 2410.11327), which run every stage at its published budget and are meant for a GPU. The synthetic
logs of each preset (users, items, interactions) are the generator's (``warehouse.generator.presets``);
this module holds what the pipeline spends on them. An asset's config field left unset takes its
preset's value; :func:`get_preset` raises on a name that is not a preset, so a typo never falls back to
another scale. Imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LLMBudget:
    """The prompts, QLoRA and generation stages. ``None``: no cap."""

    max_sequence_tokens: int  # prompt + answer (paper §5.1: 1024)
    max_train_prompts: int | None  # random sample of train prompts QLoRA learns from
    max_prompts_per_split: int | None  # valid / test prompts answered
    compare_prompts: int  # prompts also decoded the other ways (free, grounded) for the decoding report
    # the base model: "smollm2" (the packaged SmolLM2-135M-Instruct), "domain" (a small model pretrained
    # here on the catalog) or a local Hugging Face folder
    base_model: str = "smollm2"
    max_valid_prompts: int | None = None  # valid prompts answered (choosing settings); None: as test
    # the lora_adapter asset's choice (training.adapter_tuning): learning rates to train (empty: the
    # QLoRA default alone), shares of the steps to score each at, valid prompts scoring them (0: none)
    learning_rates: tuple[float, ...] = ()
    checkpoints: tuple[float, ...] = (1.0,)
    selection_prompts: int = 0


@dataclass(frozen=True)
class BaseLMBudget:
    """The embedded domain base model's size and pretraining (``training.base_lm.BaseLMConfig``); every
    width a multiple of 64 (bitsandbytes' CPU 4-bit kernels). ``block_size`` follows the prompt budget."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    block_size: int
    epochs: float
    learning_rate: float
    batch_size: int
    max_corpus_tokens: int | None  # cap on pretraining tokens per epoch; None: the whole corpus


@dataclass(frozen=True)
class TitleEncoderBudget:
    """Fine-tuning the sentence-transformers title encoder (the LSTM keeps its own, ``LstmTitleConfig``)."""

    epochs: int
    batch_size: int  # pairs per step
    max_pairs: int | None  # train pairs sampled per epoch; None: every pair


@dataclass(frozen=True)
class ImageTowerBudget:
    """Training the embedded image tower against the catalog titles (``training.image_tower``)."""

    epochs: int
    batch_size: int  # (image, title) pairs per step; the other pairs of a batch are its negatives


@dataclass(frozen=True)
class IllmrecBudget:
    """Training I-LLMRec's heads around the frozen base LM (``training.illmrec``); ``variants`` are those
    the ``illmrec`` asset trains (``full`` and the ablations of ``training.illmrec_names.VARIANTS``)."""

    epochs: int
    batch_size: int  # prompts per step (the paper: 32)
    max_train_targets: int | None  # train purchases sampled; None: all
    max_valid_targets: int  # valid targets the epochs are compared on
    max_history: int  # latest item events per prompt
    # history lines: "title" ({Title: ..., Visual representation: <i_vis>}, the authors' format) or "none"
    # (the image token alone, ~8 tokens an item instead of ~34 with SmolLM2's tokenizer)
    item_text: str = "title"
    variants: tuple[str, ...] = ("full",)


@dataclass(frozen=True)
class SequenceBudget:
    """Training budget of a sequence model (CORE, the ID baselines); the model hyperparameters are always
    the published ones."""

    epochs: int
    stopping_step: int  # stop once more epochs than this in a row bring no valid NDCG@10 gain
    train_batch_size: int
    bucket_by_length: bool  # length-sorted batches (speed only; random batches learn better)
    torch_threads: int | None  # CPU threads while training; None: torch's default


@dataclass(frozen=True)
class Preset:
    name: str
    llm: LLMBudget
    base_lm: BaseLMBudget
    title_encoder: TitleEncoderBudget
    image_tower: ImageTowerBudget
    illmrec: IllmrecBudget
    core: SequenceBudget
    baselines: SequenceBudget


# RecBole's overall.yaml (300 epochs, stopping_step 10, batches of 2048): the published budget of every
# sequence model, kept at paper scale.
_RECBOLE_BUDGET = SequenceBudget(
    epochs=300, stopping_step=10, train_batch_size=2048, bucket_by_length=False, torch_threads=None
)

TINY = Preset(
    name="tiny",
    # tests: a handful of steps and generations, short sequences (CPU time grows with length)
    llm=LLMBudget(
        max_sequence_tokens=512,
        max_train_prompts=48,
        max_prompts_per_split=24,
        compare_prompts=16,
        # the 3M-parameter domain model keeps the suite fast; tests/test_packaged_lm.py runs SmolLM2
        base_model="domain",
    ),
    base_lm=BaseLMBudget(
        vocab_size=1024,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        block_size=512,
        epochs=3.0,
        learning_rate=1e-3,
        batch_size=8,
        max_corpus_tokens=None,
    ),
    title_encoder=TitleEncoderBudget(epochs=2, batch_size=16, max_pairs=None),
    image_tower=ImageTowerBudget(epochs=3, batch_size=64),
    illmrec=IllmrecBudget(epochs=1, batch_size=16, max_train_targets=96, max_valid_targets=48, max_history=5),
    core=SequenceBudget(
        epochs=3, stopping_step=10, train_batch_size=256, bucket_by_length=False, torch_threads=None
    ),
    # models this small train faster on one CPU thread than on two that wait on each other (up to 20x on
    # a busy 2-core machine)
    baselines=SequenceBudget(
        epochs=3, stopping_step=2, train_batch_size=256, bucket_by_length=False, torch_threads=1
    ),
)

DEMO = Preset(
    name="demo",
    # SmolLM2-135M on 2 CPU cores: QLoRA ~190 train tokens/s (bf16 compute), ranking ~2 prompts/s with the
    # adapter merged. 64 train prompts of <= 512 tokens (1 + 2 epochs on the hardest 20 %) take ~4
    # minutes; 500 test prompts (an NDCG@10 standard error near 0.013) and 200 valid ones (which choose
    # the order prior's weight) ~6 more. One learning rate and no choice of steps: each further point of
    # a grid costs another training or ~1 minute of scoring on valid prompts, past make demo's budget
    llm=LLMBudget(
        max_sequence_tokens=512,
        max_train_prompts=64,
        max_prompts_per_split=500,
        compare_prompts=16,
        max_valid_prompts=200,
    ),
    # 2 x 120k tokens (40 optimizer steps): ~560 tokens/s measured on 2 busy cores
    base_lm=BaseLMBudget(
        vocab_size=2048,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        block_size=768,
        epochs=2.0,
        learning_rate=1e-3,
        batch_size=8,
        max_corpus_tokens=120_000,
    ),
    # one epoch over 1,024 sampled pairs (~3 minutes on two cores, where 3 full epochs took ~20)
    title_encoder=TitleEncoderBudget(epochs=1, batch_size=32, max_pairs=1024),
    # ~5 s an epoch over 7,200 images on two cores; held-out image->title recall@10 peaks by epoch 2-3
    # (0.014 untrained, 0.58 after one epoch, 0.63 after two, 0.60 after six)
    image_tower=ImageTowerBudget(epochs=3, batch_size=256),
    # the frozen 135M LM costs ~0.8 s a prompt forward and back with titles (286 tokens/s on 2 cores),
    # ~0.2 s with the image token alone; 256 image-only prompts train in ~1 minute. On this budget the
    # heads barely learn (valid NDCG@10 0.010-0.020 over the settings tried: 128-512 targets, 1-64
    # negatives, lr 1e-3-3e-3; 128 prompts with titles: 0.011); the paper's budget is the GPU path
    illmrec=IllmrecBudget(
        epochs=1, batch_size=8, max_train_targets=256, max_valid_targets=200, max_history=10, item_text="none"
    ),
    # batches of 256 (8x the optimizer steps of RecBole's 2048) reach a better valid NDCG@10 in 10 epochs
    # (0.154, 48 s) than 25 epochs of 2048 did (0.143, 251 s). Length-sorted batches cost CORE nothing
    # measurable here (valid NDCG@10 0.185 after 20 epochs in 79 s, against 0.187 in 187 s at random
    # batches, which made `make demo` take 15:27 instead of 12:21 on a quiet machine)
    core=SequenceBudget(
        epochs=20, stopping_step=3, train_batch_size=256, bucket_by_length=True, torch_threads=None
    ),
    # ~36 s for one epoch of all five trained baselines on demo's 13k train examples: undertrained by
    # design, to fit `make demo`'s budget
    baselines=SequenceBudget(
        epochs=4, stopping_step=2, train_batch_size=256, bucket_by_length=False, torch_threads=1
    ),
)


def _paper_scale(name: str) -> Preset:
    """A data set of the paper's Table 1: every prompt, the paper's 1024 tokens, RecBole's budgets."""
    return Preset(
        name=name,
        llm=LLMBudget(
            max_sequence_tokens=1024,
            max_train_prompts=None,
            max_prompts_per_split=None,
            compare_prompts=500,
            # the learning rate and steps chosen on valid NDCG@10: six points, three trainings
            learning_rates=(5e-4, 1e-3, 2e-3),
            checkpoints=(0.5, 1.0),
            selection_prompts=200,
        ),
        base_lm=BaseLMBudget(
            vocab_size=8192,
            hidden_size=512,
            intermediate_size=1536,
            num_hidden_layers=8,
            num_attention_heads=8,
            block_size=1024,
            epochs=2.0,
            learning_rate=6e-4,
            batch_size=16,
            max_corpus_tokens=None,
        ),
        title_encoder=TitleEncoderBudget(epochs=3, batch_size=32, max_pairs=None),
        image_tower=ImageTowerBudget(epochs=3, batch_size=256),
        # a GPU's budget: every train purchase, the paper's batch, the four rows of its Table 2
        illmrec=IllmrecBudget(
            epochs=3,
            batch_size=32,
            max_train_targets=None,
            max_valid_targets=1000,
            max_history=10,
            variants=("image", "image_ila", "image_ila_cf", "full"),
        ),
        core=_RECBOLE_BUDGET,
        baselines=_RECBOLE_BUDGET,
    )


PAPER_SCALE_NAMES = ("luggage", "footwear", "accessories", "clothing")
PRESETS: dict[str, Preset] = {
    "tiny": TINY,
    "demo": DEMO,
    **{name: _paper_scale(name) for name in PAPER_SCALE_NAMES},
}
PRESET_NAMES = tuple(PRESETS)
DEFAULT_PRESET = "demo"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the choices for anything else."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a preset; expected one of {', '.join(PRESET_NAMES)}") from None
