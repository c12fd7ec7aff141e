"""A byte-level BPE tokenizer trained on the shop's own text: titles, attributes, queries, the prompt.

The embedded base model learns from this vocabulary only, so it has to cover the catalog well with few
tokens (short prompts are fast prompts on CPU). Byte-level BPE never produces an unknown token, so new
items and misspelt queries still encode. The answer's tags are single tokens: the model writes each in
one step and constrained decoding can force them without worrying about how BPE would split them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

END_OF_TEXT = "<|endoftext|>"
PADDING = "<|pad|>"
# the tags of the answer format {<id>ID</id>,<title>TITLE</title>} (paper Figure 3)
FORMAT_TOKENS = ("<id>", "</id>", "<title>", "</title>")

# bitsandbytes' CPU 4-bit kernels need every quantized layer width to be a multiple of 64
WIDTH_MULTIPLE = 64


@dataclass(frozen=True)
class DomainTokenizerConfig:
    # a few thousand merges cover a fashion catalog's words; a larger vocabulary only grows the
    # embedding and output layers, which dominate a small model's parameter count
    vocab_size: int = 2048
    # merges must be seen at least twice so that one-off typos in queries do not claim vocabulary
    min_frequency: int = 2


def round_up_to_width_multiple(size: int) -> int:
    return -(-size // WIDTH_MULTIPLE) * WIDTH_MULTIPLE


def train_domain_tokenizer(
    texts: Iterable[str], config: DomainTokenizerConfig | None = None
) -> PreTrainedTokenizerFast:
    """Train BPE on ``texts`` and wrap it for transformers (end-of-text doubles as BOS, separate pad)."""
    config = config or DomainTokenizerConfig()
    if config.vocab_size % WIDTH_MULTIPLE:
        raise ValueError(
            f"vocab_size={config.vocab_size} must be a multiple of {WIDTH_MULTIPLE} "
            f"(bitsandbytes CPU kernels); try {round_up_to_width_multiple(config.vocab_size)}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        # the format tags are added after training; leave room so the total stays on the multiple
        vocab_size=config.vocab_size - len(FORMAT_TOKENS),
        min_frequency=config.min_frequency,
        special_tokens=[END_OF_TEXT, PADDING],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # not "special": skip_special_tokens must keep them when the answer is decoded
    tokenizer.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in FORMAT_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=PADDING,
        unk_token=None,
        model_max_length=1 << 20,
    )
