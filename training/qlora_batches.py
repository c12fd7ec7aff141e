"""The batches QLoRA trains on: prompt + response examples labelled and weighted on the decision.

Each example is labelled on its response only (the model is taught to answer, not to reproduce prompts),
and each label carries its weight in the loss: 1 on the tokens that choose the item (the title and
the id of an answer to a prompt with candidates, the id of the paper's answer), the rest of the answer
(its tags and the paper's title) ``answer_token_weight``. Batches are
padded on the left so that every answer ends at the right edge and the loss computes logits only over the
last positions that carry a label (``logits_to_keep``): the 49K-wide vocabulary projection of every
prompt token was most of the memory and much of the time of a step on CPU. transformers' ``Trainer``
knows neither the weights nor the kept tail, hence the small collator, loss and ``compute_loss`` override
written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Trainer

from recommender.constrained_decoding import ANSWER_OPEN, CANDIDATE_ANSWER_OPEN, ID_CLOSE

IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips


@dataclass(frozen=True)
class TrainingExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens; the response and end-of-text are learnt
    # each label's weight in the loss: 0 on the prompt, 1 on the decision, answer_token_weight elsewhere
    weights: list[float] = field(default_factory=list)

    @property
    def n_response_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)

    @property
    def n_supervised_tail(self) -> int:
        """Positions from the first supervised token to the end (the logits a step must compute)."""
        for position, label in enumerate(self.labels):
            if label != IGNORE_INDEX:
                return len(self.labels) - position
        return 0

    def decision_mask(self) -> list[bool]:
        """Which labels choose the item (weight 1); all supervised ones when no span was marked."""
        weights = self.weights or [float(label != IGNORE_INDEX) for label in self.labels]
        return [w >= 1.0 and label != IGNORE_INDEX for w, label in zip(weights, self.labels, strict=True)]


def decision_span(response: str) -> tuple[int, int] | None:
    """The characters of ``response`` that choose the item: from the title to the id of an answer to a
    prompt with candidates (``{<title>TITLE</title>,<id>ID</id>}``: the title is how the model finds its
    pick), else the id between ``{<id>`` and ``</id>``."""
    for opening in (CANDIDATE_ANSWER_OPEN, ANSWER_OPEN):
        start = response.find(opening)
        if start < 0:
            continue
        begin = start + len(opening)
        end = response.find(ID_CLOSE, begin)
        return (begin, end) if end > begin else None
    return None


def response_weights(
    offsets: Sequence[tuple[int, int]], response: str, answer_token_weight: float
) -> list[float]:
    """Per response token (then end-of-text): 1 where it overlaps the decision span, else the weight."""
    span = decision_span(response)
    if span is None:
        return [1.0] * (len(offsets) + 1)
    weights = [1.0 if begin < span[1] and end > span[0] else answer_token_weight for begin, end in offsets]
    return [*weights, answer_token_weight]


def tokenize_examples(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_sequence_tokens: int,
    answer_token_weight: float = 1.0,
) -> tuple[list[TrainingExample], int]:
    """Prompt + response + end-of-text, labelled on the response only; and how many were cut.

    The prompts are already fitted to the budget; an over-long pair loses prompt tokens from the
    front (after BOS), never response tokens. Each label carries its loss weight (:func:`response_weights`).
    """
    if len(prompts) != len(responses):
        raise ValueError(
            f"{len(prompts)} prompts but {len(responses)} responses; pass one response per prompt"
        )
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    encoded = tokenizer(list(responses), add_special_tokens=False, return_offsets_mapping=True)
    response_ids = encoded["input_ids"]
    examples: list[TrainingExample] = []
    n_truncated = 0
    for prompt, response, offsets, text in zip(
        prompt_ids, response_ids, encoded["offset_mapping"], responses, strict=True
    ):
        answer = [*response, tokenizer.eos_token_id]
        weights = response_weights(offsets, text, answer_token_weight)
        excess = len(prompt) + len(answer) - max_sequence_tokens
        if excess > 0:
            if excess >= len(prompt):
                raise ValueError(
                    f"a response of {len(answer)} tokens does not fit "
                    f"max_sequence_tokens={max_sequence_tokens}"
                )
            keep_bos = 1 if prompt and prompt[0] == tokenizer.bos_token_id else 0
            prompt = prompt[:keep_bos] + prompt[keep_bos + excess :]
            n_truncated += 1
        examples.append(
            TrainingExample(
                [*prompt, *answer], [IGNORE_INDEX] * len(prompt) + answer, [0.0] * len(prompt) + weights
            )
        )
    return examples, n_truncated


class ResponseOnlyCollator:
    """Pads a batch on the left (answers end together at the right edge); padding is masked out of
    attention and loss, and positions count from each row's first real token."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list]]) -> dict[str, torch.Tensor]:
        width = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        weights = torch.zeros((len(features), width), dtype=torch.float32)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, width - length :] = torch.tensor(feature["input_ids"])
            labels[row, width - length :] = torch.tensor(feature["labels"])
            row_weights = feature.get("weights") or [float(x != IGNORE_INDEX) for x in feature["labels"]]
            weights[row, width - length :] = torch.tensor(row_weights, dtype=torch.float32)
            attention_mask[row, width - length :] = 1
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "loss_weights": weights,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
        }


def tail_token_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], tail: int) -> torch.Tensor:
    """Per-token cross-entropy of the last ``tail`` labels of a left-padded batch (0 where ignored),
    with logits computed only there."""
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=tail + 1,
    ).logits
    # position t predicts token t + 1: the kept logits but the last predict the last ``tail`` labels
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2),
        batch["labels"][:, -tail:],
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )


def weighted_response_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cross-entropy over the supervised tail of a left-padded batch, as its weighted sum and the
    sum of the weights: the loss is their ratio, per decision-token-equivalent."""
    labels = batch["labels"]
    supervised = (labels != IGNORE_INDEX).any(dim=0).nonzero()
    tail = labels.shape[1] - int(supervised[0]) if supervised.numel() else 1
    weights = batch["loss_weights"][:, -tail:]
    losses = tail_token_losses(model, batch, tail)
    return (losses * weights).sum(), weights.sum().detach()


class WeightedLossTrainer(Trainer):
    """transformers' Trainer with :func:`weighted_response_loss` instead of the model's own loss.

    Under torchrun each process holds a share of the global batch, and DistributedDataParallel averages
    the processes' gradients. So that a step of N processes is the step of one process on the whole
    batch, each process divides its weighted sum by the weights of the whole batch (summed over the
    processes), times N; the mean of the N losses that the Trainer logs is then the whole batch's loss.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weighted, weight = weighted_response_loss(model, inputs)
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if world > 1:
            weight = weight.clone()
            torch.distributed.all_reduce(weight)
        loss = weighted / weight.clamp(min=1e-6) * world
        return (loss, None) if return_outputs else loss


class ScheduledExamples(torch.utils.data.Dataset):
    """The examples in schedule order (with repeats); read sequentially by the Trainer."""

    def __init__(self, examples: Sequence[TrainingExample], order: Sequence[int]) -> None:
        self.examples = examples
        self.order = list(order)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> dict[str, list[int]]:
        example = self.examples[self.order[position]]
        return {"input_ids": example.input_ids, "labels": example.labels, "weights": example.weights}
