"""The tolerant parser of generated answers ``{<id>ID</id>,<title>TITLE</title>}``."""

import pytest

from recommender.llm_output import parse_recommendation
from recommender.prompts import render_response


@pytest.mark.parametrize(
    ("text", "item_id", "title", "format_ok"),
    [
        ("{<id>258</id>,<title>RUBZOO Tank Top</title>}", "258", "RUBZOO Tank Top", True),
        (
            " {<id>B0PASH9SLM</id>,<title>YEWYFO Necklace 16 Inch</title>}\n",
            "B0PASH9SLM",
            "YEWYFO Necklace 16 Inch",
            True,
        ),
        # recoverable, but not the format
        ("{<id> 258 </id>,<title>Tank</title>}", "258", "Tank", False),
        ("{<id>258</id>,<title>RUBZOO Tank Top", "258", "RUBZOO Tank Top", False),  # cut by max tokens
        ("{<id>258</id><title>Tank</title>}", "258", "Tank", False),  # missing comma
        ("<id>258,<title>Tank</title>", "258", "Tank", False),
        ("{<id>258</id>,<title>Tank</title>} {<id>9</id>", "258", "Tank", False),  # trailing junk
        ('{"id": "41", "title": "Chiffon Blouse"}', "41", "Chiffon Blouse", False),  # JSON instead of tags
        ("the product id: A-12 is best", "A-12", None, False),
        # nothing to recover
        ("", None, None, False),
        ("I would recommend a dress", None, None, False),
        ("{<id></id>,<title></title>}", None, None, False),
    ],
)
def test_parse(text, item_id, title, format_ok):
    parsed = parse_recommendation(text)
    assert (parsed.item_id, parsed.title, parsed.format_ok) == (item_id, title, format_ok)


def test_every_rendered_response_parses_back():
    for item_id, title in [
        ("B0PASH9SLM", "YEWYFO Dainty 14K Gold Plated Necklace Black 16 Inch"),
        ("41", "Timeson Women's Tunic, Business Casual M"),
    ]:
        parsed = parse_recommendation(render_response(item_id, title))
        assert parsed.format_ok and (parsed.item_id, parsed.title) == (item_id, title)
