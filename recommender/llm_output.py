"""Reading the model's answer ``{<id>ID</id>,<title>TITLE</title>}`` back into an item id and a title.

The paper saw 7 % of unconstrained outputs break this format (§4.3). The parser is strict about what
counts as well-formed (``format_ok``) and tolerant about what it still recovers: a missing closing tag,
a truncated title, stray spaces or text around the answer, ``id: 123`` instead of tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# the whole answer, exactly as Figure 3 writes it (whitespace around it is allowed)
# the chosen candidate's label may lead the answer ("B: {<id>...", recommender.prompts.render_response)
STRICT_RESPONSE = re.compile(
    r"\s*(?:[A-Z]{1,2}:\s*)?\{<id>(?P<id>[^<>{}\s,]+)</id>,<title>(?P<title>[^<>{}]+)</title>\}\s*"
)

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
    strict = STRICT_RESPONSE.fullmatch(text)
    if strict:
        return ParsedRecommendation(strict["id"].strip(), strict["title"].strip(), format_ok=True)

    id_match = _TAGGED_ID.search(text) or _LOOSE_ID.search(text)
    title_match = _TAGGED_TITLE.search(text) or _LOOSE_TITLE.search(text)
    item_id = id_match["id"].strip() if id_match else None
    title = title_match["title"].strip() if title_match else None
    return ParsedRecommendation(item_id or None, title or None, format_ok=False)
