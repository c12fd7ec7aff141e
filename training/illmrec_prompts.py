"""I-LLMRec's prompts as token ids (``training.illmrec``): a history of items, each written with its
image as one vector token, then ``[REC]``, then, for the alignment loss (ILA), one answer about the next
item.

A history item is ``{Title: <title>, Visual representation: <i_vis>}`` as in the authors' code
(``item_text="title"``), or ``{Visual representation: <i_vis>}`` (``"none"``: the item is its image
alone, the paper's one token per item). ``<i_vis>`` and ``[REC]`` are not words of the tokenizer: their
positions hold a placeholder id whose embedding the model replaces (the adaptor's output, the learnt
``[REC]`` vector), so the base model's vocabulary and embedding table stay as they are.

Pieces are tokenized once (the instruction, each item's line, each answer) and concatenated as ids, so a
prompt costs no tokenizer call and an item's line tokenizes the same wherever it stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

ITEM_TEXTS = ("title", "none")
INSTRUCTION = "A shopper interacted with these fashion items, oldest first:\n"
QUESTION = "\nThe item this shopper buys next:"
# ILA's questions about the next item (the authors' templates ask for its title, brand, category or a
# feature); the answer follows [REC], which the causal mask keeps blind to it
ANSWER_TEMPLATES = {
    "title": " Its title is {}.",
    "brand": " Its brand is {}.",
    "subcategory": " It is a {}.",
    "color": " Its color is {}.",
}
IGNORE = -100  # label of a position without loss (transformers' convention)


@dataclass(frozen=True)
class EncodedPrompt:
    """One prompt's ids; ``vis_positions`` hold the history items' catalog rows ``vis_rows``."""

    input_ids: list[int]
    vis_positions: list[int]
    vis_rows: list[int]
    rec_position: int
    answer_ids: list[int]  # after [REC]; empty at inference


@dataclass(frozen=True)
class PromptBatch:
    """Right-padded prompts as tensors (:func:`collate`)."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    labels: torch.Tensor  # [B, T] next-token targets of the answers, IGNORE elsewhere
    vis_index: tuple[torch.Tensor, torch.Tensor]  # (batch row, position) of every <i_vis>
    vis_rows: torch.Tensor  # catalog row of every <i_vis>, aligned with vis_index
    rec_positions: torch.Tensor  # [B]

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


class PromptEncoder:
    """Token ids of I-LLMRec prompts over one catalog (item rows as ``training.illmrec.ItemFeatures``)."""

    def __init__(
        self, tokenizer, titles: Sequence[str], item_text: str = "title", placeholder_id: int | None = None
    ) -> None:
        if item_text not in ITEM_TEXTS:
            raise ValueError(f"unknown item_text {item_text!r}; choose from {', '.join(ITEM_TEXTS)}")
        self.tokenizer = tokenizer
        self.item_text = item_text
        self.titles = [title if isinstance(title, str) else "" for title in titles]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.placeholder_id = int(pad if placeholder_id is None else placeholder_id)
        self.eos_id = int(tokenizer.eos_token_id if tokenizer.eos_token_id is not None else pad)
        self.instruction = self._ids(INSTRUCTION)
        self.question = self._ids(QUESTION)
        self.closing = self._ids("}\n")
        self._openings: dict[int, list[int]] = {}

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _opening(self, row: int) -> list[int]:
        """The ids of an item's line before its ``<i_vis>``."""
        if row not in self._openings:
            title = f"Title: {self.titles[row]}, " if self.item_text == "title" else ""
            self._openings[row] = self._ids("{" + title + "Visual representation: ")
        return self._openings[row]

    def answer(self, field: str, value: str) -> list[int]:
        return [*self._ids(ANSWER_TEMPLATES[field].format(value)), self.eos_id]

    def encode(self, history_rows: Sequence[int], answer_ids: Sequence[int] = ()) -> EncodedPrompt:
        ids = list(self.instruction)
        vis_positions: list[int] = []
        for row in history_rows:
            ids += self._opening(int(row))
            vis_positions.append(len(ids))
            ids.append(self.placeholder_id)
            ids += self.closing
        ids += self.question
        rec_position = len(ids)
        ids.append(self.placeholder_id)
        return EncodedPrompt(
            ids + list(answer_ids),
            vis_positions,
            [int(r) for r in history_rows],
            rec_position,
            list(answer_ids),
        )

    def tokens_per_item(self, rows: Sequence[int]) -> float:
        """Mean tokens a history item costs in this format (its line and its vector token)."""
        return float(np.mean([len(self._opening(int(r))) + 1 + len(self.closing) for r in rows]))


def collate(prompts: Sequence[EncodedPrompt], pad_id: int) -> PromptBatch:
    """Right-pad ``prompts`` into one batch; labels mark the answer tokens after each ``[REC]``."""
    width = max(len(p.input_ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    labels = torch.full((len(prompts), width), IGNORE, dtype=torch.long)
    vis_batch, vis_pos, vis_rows = [], [], []
    for i, prompt in enumerate(prompts):
        n = len(prompt.input_ids)
        ids[i, :n] = torch.tensor(prompt.input_ids)
        mask[i, :n] = 1
        if prompt.answer_ids:  # labels[t] is the token position t predicts: the answer's, from [REC] on
            labels[i, prompt.rec_position : n - 1] = torch.tensor(prompt.answer_ids)
        vis_batch += [i] * len(prompt.vis_positions)
        vis_pos += prompt.vis_positions
        vis_rows += prompt.vis_rows
    return PromptBatch(
        input_ids=ids,
        attention_mask=mask,
        labels=labels,
        vis_index=(torch.tensor(vis_batch, dtype=torch.long), torch.tensor(vis_pos, dtype=torch.long)),
        vis_rows=torch.tensor(vis_rows, dtype=torch.long),
        rec_positions=torch.tensor([p.rec_position for p in prompts], dtype=torch.long),
    )


def answer_fields(items: Mapping[str, Sequence[str | None]]) -> list[str]:
    """The ILA answer fields the catalog has values for (``items`` column -> values by row)."""
    return [name for name in ANSWER_TEMPLATES if name in items]
