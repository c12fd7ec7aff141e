"""Constrained decoding: every answer is well-formed and names a catalog id.

The paper found 7 % of its outputs malformed (§4.3) and trained longer on hard prompts to lower that.
Here the decoder cannot leave the format: at each step the model chooses only among tokens that keep
the answer valid. The answer head ``{<id>ID</id>,<title>`` follows a prefix tree of the catalog's ids
(optionally only the target category's ids); the title is free text without the format's brackets;
then ``</title>}`` and end-of-text. When the token budget is about to run out, the title is closed;
given the catalog's titles, it is also closed once it is longer than any of them (plus a little slack
for tokenisation in context), so a model that rambles stops there instead of at ``max_new_tokens``.
With ``catalog_title`` the title is not free: it spells the chosen id's catalog title, so every answer
names one real product consistently (the id and the title the mixup retrieval embeds agree).
A prompt with candidates is answered ``{<title>TITLE</title>,<id>ID</id>}`` (``recommender.prompts``):
its shortlist is a prefix tree of the candidates' whole answers, each with its catalog title, so the
decoder copies one candidate's title and id and stops.

``ResponseGrammar`` holds the tokenised catalog once; ``ResponseGrammar.constraint(...)`` makes the
per-batch callable for ``model.generate(prefix_allowed_tokens_fn=...)``. That hook runs before
temperature and top-p, so sampling only ever sees valid tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recommender.prompts import candidate_answers, first_places

ANSWER_OPEN = "{<id>"
ID_CLOSE = "</id>"
ID_CLOSE_TITLE_OPEN = "</id>,<title>"
ANSWER_CLOSE = "</title>}"
# the answer to a prompt with candidates opens with the title (recommender.prompts.CANDIDATE_RESPONSE_FORMAT)
CANDIDATE_ANSWER_OPEN = "{<title>"
# characters that belong to the format, never to a title (the parser reads titles without them)
FORMAT_CHARACTERS = frozenset("<>{}\n")

_END = -1  # marks the node where an answer head is complete
# extra title tokens allowed beyond the longest catalog title: a title tokenised after ``<title>`` can
# split differently from the title alone
TITLE_SLACK_TOKENS = 4


class TokenTrie:
    """Token-id sequences stored as nested dicts; a node lists which tokens may come next."""

    def __init__(self, whole_answers: bool = False) -> None:
        self.root: dict[int, Any] = {}
        self.longest = 0
        # True: each sequence is a whole answer, its closing tags and end-of-text included; False: each is
        # an answer head, which a title and the closing tags follow
        self.whole_answers = whole_answers

    def add(self, token_ids: Sequence[int], item_id: str) -> None:
        node = self.root
        for token_id in token_ids:
            node = node.setdefault(token_id, {})
        node[_END] = item_id  # the id this head spells
        self.longest = max(self.longest, len(token_ids))

    def __bool__(self) -> bool:
        return bool(self.root)


class ResponseGrammar:
    """The answer format over a tokenizer and a catalog of item ids (with their categories)."""

    def __init__(
        self,
        tokenizer: Any,
        item_ids: Sequence[str],
        item_categories: Sequence[str | None] | None = None,
        item_titles: Sequence[str | None] | None = None,
        catalog_title: bool = False,
    ) -> None:
        if not item_ids:
            raise ValueError("constrained decoding needs at least one catalog item id")
        if item_categories is not None and len(item_categories) != len(item_ids):
            raise ValueError(
                f"{len(item_categories)} categories given for {len(item_ids)} item ids; pass one per id"
            )
        if item_titles is not None and len(item_titles) != len(item_ids):
            raise ValueError(f"{len(item_titles)} titles given for {len(item_ids)} item ids; pass one per id")
        self.tokenizer = tokenizer
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.close_ids = self._encode(ANSWER_CLOSE)
        self._tries: dict[str | None, TokenTrie] = {None: TokenTrie()}
        heads = tokenizer(
            [f"{ANSWER_OPEN}{item_id}{ID_CLOSE_TITLE_OPEN}" for item_id in item_ids], add_special_tokens=False
        )["input_ids"]
        for position, (item_id, head) in enumerate(zip(item_ids, heads, strict=True)):
            self._tries[None].add(head, item_id)
            category = item_categories[position] if item_categories is not None else None
            if category is not None:
                self._tries.setdefault(category, TokenTrie()).add(head, item_id)
        self.item_ids = frozenset(item_ids)
        self.category_of = dict(zip(item_ids, item_categories, strict=True)) if item_categories else {}
        titled = [
            (item_id, title) for item_id, title in zip(item_ids, item_titles or (), strict=False) if title
        ]
        self.titles: dict[str, str] = dict(titled)  # id -> catalog title
        title_tokens = (
            tokenizer([title for _, title in titled], add_special_tokens=False)["input_ids"] if titled else []
        )
        # None: titles are bounded by the token budget only
        self.max_title_tokens = max(map(len, title_tokens)) + TITLE_SLACK_TOKENS if titled else None
        if catalog_title and not titled:
            raise ValueError("catalog_title needs the catalog's titles (item_titles)")
        # id -> its title's tokens, which the answer must spell after the id (catalog_title only)
        self.forced_titles: dict[str, list[int]] = (
            {item_id: list(ids) for (item_id, _), ids in zip(titled, title_tokens, strict=True)}
            if catalog_title
            else {}
        )

        special = set(tokenizer.all_special_ids)
        texts = tokenizer.batch_decode([[token_id] for token_id in range(len(tokenizer))])
        title_ids = [
            token_id
            for token_id, text in enumerate(texts)
            if token_id not in special and text and not (FORMAT_CHARACTERS & set(text))
        ]
        self._title_ids = torch.tensor(title_ids, dtype=torch.long)
        self._title_or_close_ids = torch.tensor([*title_ids, self.close_ids[0]], dtype=torch.long)
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def trie(self, category: str | None) -> TokenTrie:
        """The ids of ``category`` (all ids when the category is unknown or has no items)."""
        return self._tries.get(category) or self._tries[None]

    def shortlist_trie(self, item_ids: Sequence[str], category: str | None) -> TokenTrie | None:
        """The whole answers ``{<title>TITLE</title>,<id>ID</id>}`` of the catalog ids among ``item_ids``
        (of ``category`` when given), each with its catalog title, or None when none is left."""
        kept = [
            item_id
            for item_id in first_places(item_ids)
            if item_id in self.item_ids and (category is None or self.category_of.get(item_id) == category)
        ]
        if not kept:
            return None
        trie = TokenTrie(whole_answers=True)
        answers = self.tokenizer(candidate_answers(kept, self.titles), add_special_tokens=False)["input_ids"]
        for item_id, answer in zip(kept, answers, strict=True):
            trie.add([*answer, self.eos_token_id], item_id)  # the answer ends where it ends
        return trie

    def title_ids(self, device: torch.device, with_close: bool) -> torch.Tensor:
        if device not in self._on_device:
            self._on_device[device] = (self._title_ids.to(device), self._title_or_close_ids.to(device))
        plain, closing = self._on_device[device]
        return closing if with_close else plain

    def constraint(
        self,
        prompt_length: int,
        max_new_tokens: int,
        categories: Sequence[str | None] | None = None,
        batch_size: int = 1,
        shortlists: Sequence[Sequence[str] | None] | None = None,
    ) -> BatchConstraint:
        """The ``prefix_allowed_tokens_fn`` for one left-padded batch of ``prompt_length``-token prompts.

        ``categories`` (one per row) restricts each row to its category's ids; ``None`` allows all ids.
        ``shortlists`` (one per row, e.g. the query memory's candidates) narrows a row further to those
        ids; a row whose shortlist holds no catalog id of its category keeps the category's ids.
        """
        n_rows = len(categories) if categories is not None else len(shortlists) if shortlists else batch_size
        rows = list(categories) if categories is not None else [None] * n_rows
        tries = [self.trie(category) for category in rows]
        for row, shortlist in enumerate(shortlists or ()):
            narrowed = self.shortlist_trie(shortlist, rows[row]) if shortlist else None
            tries[row] = narrowed or tries[row]
        needed = max(trie.longest + (0 if trie.whole_answers else len(self.close_ids) + 1) for trie in tries)
        if needed > max_new_tokens:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} is too short for the answer format: the longest id "
                f"head plus a one-token title and the closing tags take {needed} tokens"
            )
        return BatchConstraint(self, tries, prompt_length, max_new_tokens)


class BatchConstraint:
    """Allowed next tokens for each row of one ``generate`` call, from what the row has written so far."""

    def __init__(
        self, grammar: ResponseGrammar, tries: list[TokenTrie], prompt_length: int, max_new_tokens: int
    ) -> None:
        self.grammar = grammar
        self.tries = tries
        self.prompt_length = prompt_length
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int] | torch.Tensor:
        grammar = self.grammar
        written = input_ids[self.prompt_length :].tolist()
        if grammar.eos_token_id in written:
            return [grammar.eos_token_id]  # finished rows are padded by generate; any token is fine
        node = self.tries[batch_id].root
        for position, token_id in enumerate(written):
            if _END in node:
                return self._title_step(node[_END], written[position:], len(written), input_ids.device)
            node = node.get(token_id)
            if node is None:
                # only reachable when generation started off-grammar (a prompt_length mismatch)
                return [grammar.eos_token_id]
        if _END in node:
            return self._title_step(node[_END], [], len(written), input_ids.device)
        return [token_id for token_id in node if token_id != _END]

    def _title_step(
        self, item_id: str, title: list[int], n_written: int, device: torch.device
    ) -> list[int] | torch.Tensor:
        close = self.grammar.close_ids
        forced = self.grammar.forced_titles.get(item_id)
        if forced is not None:
            # the catalog title, cut to what the budget leaves before the closing tags and end-of-text
            room = self.max_new_tokens - (n_written - len(title)) - len(close) - 1
            spelled = [*forced[: max(1, room)], *close]
            return [spelled[len(title)]] if len(title) < len(spelled) else [self.grammar.eos_token_id]
        if close[0] in title:
            n_closed = len(title) - title.index(close[0])
            return [close[n_closed]] if n_closed < len(close) else [self.grammar.eos_token_id]
        if self.max_new_tokens - n_written <= len(close):
            return [close[0]]  # the budget only leaves room for the closing tags
        longest = self.grammar.max_title_tokens
        if longest is not None and len(title) >= longest:
            return [close[0]]  # longer than every catalog title: the rest would be rambling
        return self.grammar.title_ids(device, with_close=bool(title))
