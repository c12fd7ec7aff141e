"""Reading the model's answer back into an item id and a title: ``{<id>ID</id>,<title>TITLE</title>}``
(Figure 3) or, after a prompt with candidates, ``{<title>TITLE</title>,<id>ID</id>}``
(``recommender.prompts``).

The paper saw 7 % of unconstrained outputs break this format (§4.3). The parser is strict about what
counts as well-formed (``format_ok``) and tolerant about what it still recovers: a missing closing tag,
a truncated title, stray spaces or text around the answer, ``id: 123`` instead of tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# the whole answer in either order, exactly as written (whitespace around it is allowed)
_ID = r"<id>(?P<id>[^<>{}\s,]+)</id>"
_TITLE = r"<title>(?P<title>[^<>{}]+)</title>"
STRICT_RESPONSES = (re.compile(rf"\s*\{{{_ID},{_TITLE}\}}\s*"), re.compile(rf"\s*\{{{_TITLE},{_ID}\}}\s*"))

_TAGGED_ID = re.compile(r"<id>\s*(?P<id>[^<>{},]+?)\s*(?:</id>|,|<|$)")
_LOOSE_ID = re.compile(r"\bid\b\"?\s*[:=]\s*\"?(?P<id>[A-Za-z0-9][\w\-.]*)", re.IGNORECASE)
_TAGGED_TITLE = re.compile(r"<title>\s*(?P<title>[^<>{}]*?)\s*(?:</title>|<|\}|$)")
_LOOSE_TITLE = re.compile(r"\btitle\b\"?\s*[:=]\s*\"?(?P<title>[^\"<>{}]+)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedRecommendation:
    item_id: str | None
    title: str | None
    format_ok: bool  # the text is exactly one well-formed answer


def parse_recommendation(text: str) -> ParsedRecommendation:
    """Item id and title from one generated answer; ``None`` for the parts that cannot be found."""
    strict = next((match for pattern in STRICT_RESPONSES if (match := pattern.fullmatch(text))), None)
    if strict:
        return ParsedRecommendation(strict["id"].strip(), strict["title"].strip(), format_ok=True)

    id_match = _TAGGED_ID.search(text) or _LOOSE_ID.search(text)
    title_match = _TAGGED_TITLE.search(text) or _LOOSE_TITLE.search(text)
    item_id = id_match["id"].strip() if id_match else None
    title = title_match["title"].strip() if title_match else None
    return ParsedRecommendation(item_id or None, title or None, format_ok=False)
