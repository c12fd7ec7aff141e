"""Search intents and the many ways shoppers type them (the paper's C4).

An intent is a subcategory plus optional attributes (gender, color, occasion, season, holiday, style
adjective, material, brand). The same intent becomes different strings through synonyms ("sneakers",
"trainers", "running shoes"), singular/plural, gender forms ("womens", "for women", "ladies"), word order,
optional filler words, typos (swapped, dropped, doubled or neighbouring-key letters) and casing. Each user has
habits (a favourite synonym per subcategory, a favourite word order, a typo rate, a casing style) that
they follow with their own probability, so a user is consistent and the population is diverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.generator.fashion_calendar import HOLIDAY_NAMES, HOLIDAYS
from warehouse.generator.users import Users
from warehouse.generator.vocabulary import (
    COLOR_NAMES,
    COLORS,
    FILLER_QUERY_WORDS,
    GENDER_QUERY_WORDS,
    GENDERS,
    MATERIALS,
    OCCASION_QUERY_WORDS,
    OCCASIONS,
    SEASON_QUERY_WORDS,
    SEASONS,
    SUBCATEGORIES,
)

FILLER_RATE = 0.07  # share of queries with a filler word ("cute", "cheap", ...)
SHUFFLED_MODIFIERS_RATE = 0.3  # share of queries that put the color after the style words
BRAND_AS_WRITTEN_RATE = 0.25  # share of brand mentions typed in the brand's own capitals
# Slot orders: G gender, M modifiers (color, adjective, material), N noun, O occasion, C season/holiday.
TEMPLATES = ("GMNOC", "MNGOC", "NGMOC", "CMNGO", "GNMCO", "MNOCG")

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _i, _ch in enumerate(_row):
        _NEIGHBOURS[_ch] = "".join(
            _KEYBOARD_ROWS[rr][ii]
            for rr in (_r - 1, _r, _r + 1)
            for ii in (_i - 1, _i, _i + 1)
            if 0 <= rr < 3 and 0 <= ii < len(_KEYBOARD_ROWS[rr]) and (rr, ii) != (_r, _i)
        )


@dataclass
class Intents:
    """Parallel arrays, one entry per search; -1 means the attribute is not part of the intent."""

    subcat: np.ndarray
    gender: np.ndarray
    color: np.ndarray
    occasion: np.ndarray
    season: np.ndarray
    holiday: np.ndarray
    adjective: np.ndarray  # index into the subcategory's adjectives
    material: np.ndarray
    brand: np.ndarray  # index into the catalog's brand names

    FIELDS = ("subcat", "gender", "color", "occasion", "season", "holiday", "adjective", "material", "brand")
    # bits of each field in `codes` (value + 1, so that -1 fits); 63 bits in all
    BITS = (6, 6, 6, 6, 6, 6, 6, 6, 15)

    @property
    def n(self) -> int:
        return self.subcat.size

    def take(self, idx: np.ndarray) -> Intents:
        return Intents(*(getattr(self, f)[idx] for f in self.FIELDS))

    def codes(self) -> np.ndarray:
        """One int64 per intent that is equal exactly when the intents are equal."""
        code = np.zeros(self.n, dtype=np.int64)
        for f, bits in zip(self.FIELDS, self.BITS, strict=True):
            values = getattr(self, f).astype(np.int64) + 1
            if values.size and values.max() >= 1 << bits:
                raise ValueError(
                    f"intent field {f!r} has values up to {values.max() - 1}, above {(1 << bits) - 2}"
                )
            code = (code << bits) | values
        return code

    @staticmethod
    def concat(parts: list[Intents]) -> Intents:
        return Intents(*(np.concatenate([getattr(p, f) for p in parts]) for f in Intents.FIELDS))

    def label(self, i: int, brand_names: list[str]) -> str:
        """Readable key of intent ``i``, e.g. "Dresses | Women | Black | - | Summer | - | - | - | -"."""
        sub = SUBCATEGORIES[self.subcat[i]]
        parts = [
            sub.name,
            GENDERS[self.gender[i]] if self.gender[i] >= 0 else "-",
            COLOR_NAMES[self.color[i]] if self.color[i] >= 0 else "-",
            OCCASIONS[self.occasion[i]] if self.occasion[i] >= 0 else "-",
            SEASONS[self.season[i]] if self.season[i] >= 0 else "-",
            HOLIDAY_NAMES[self.holiday[i]] if self.holiday[i] >= 0 else "-",
            sub.adjectives[self.adjective[i]] if self.adjective[i] >= 0 else "-",
            MATERIALS[self.material[i]] if self.material[i] >= 0 else "-",
            brand_names[self.brand[i]] if self.brand[i] >= 0 else "-",
        ]
        return " | ".join(parts)


def _typo(word: str, kind: float, where: float) -> str:
    """One keyboard slip in ``word``: swap two letters, drop one, double one, or hit a neighbour key."""
    pos = min(int(where * (len(word) - 1)), len(word) - 2)
    if kind < 0.35:
        return word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    if kind < 0.6:
        return word[:pos] + word[pos + 1 :]
    if kind < 0.8:
        return word[: pos + 1] + word[pos] + word[pos + 1 :]
    near = _NEIGHBOURS.get(word[pos], "")
    if not near:
        return word[:pos] + word[pos + 1 :]
    return word[:pos] + near[int(kind * 1000) % len(near)] + word[pos + 1 :]


def write_queries(
    intents: Intents, user: np.ndarray, users: Users, brand_names: list[str], rng: np.random.Generator
) -> list[str]:
    """The query string of every search, typed by its user."""
    u = rng.random((intents.n, 22))
    out: list[str] = []
    cols = [getattr(intents, f).tolist() for f in Intents.FIELDS]
    habit = users.habit_strength[user].tolist()
    noun_habit = users.noun_habit[user].tolist()
    plural_rate = users.plural_rate[user].tolist()
    gender_form = users.gender_form[user].tolist()
    template_habit = users.template_habit[user].tolist()
    typo_rate = users.typo_rate[user].tolist()
    case_style = users.case_style[user].tolist()
    for i, (s, g, c, o, se, h, a, m, b) in enumerate(zip(*cols, strict=True)):
        ui = u[i]
        sub = SUBCATEGORIES[s]
        nouns = sub.query_nouns
        k = (
            (noun_habit[i] * 2654435761 + s * 40503) % len(nouns)
            if ui[0] < habit[i]
            else int(ui[1] * len(nouns))
        )
        singular, plural = nouns[k]
        noun = plural if ui[2] < plural_rate[i] else singular
        gender_word = ""
        if g >= 0:
            forms = GENDER_QUERY_WORDS[GENDERS[g]]
            gender_word = forms[gender_form[i] % len(forms) if ui[3] < habit[i] else int(ui[4] * len(forms))]
        mods = []
        if c >= 0:
            spellings = COLORS[c][2]
            mods.append(spellings[0] if ui[5] < 0.6 else spellings[int(ui[6] * len(spellings))])
        if a >= 0:
            mods.append(sub.adjectives[a].lower())
        if m >= 0:
            mods.append(MATERIALS[m].lower())
        if len(mods) > 1 and ui[7] < SHUFFLED_MODIFIERS_RATE:
            mods = mods[1:] + mods[:1]
        occasion = ""
        if o >= 0:
            words = OCCASION_QUERY_WORDS[OCCASIONS[o]]
            occasion = words[int(ui[8] * len(words))]
        context = []
        if h >= 0:
            words = HOLIDAYS[h].query_words
            context.append(words[int(ui[9] * len(words))])
        if se >= 0:
            words = SEASON_QUERY_WORDS[SEASONS[se]]
            context.append(words[int(ui[10] * len(words))])
        template = TEMPLATES[template_habit[i] if ui[11] < habit[i] else int(ui[12] * len(TEMPLATES))]
        if gender_word.startswith("for ") and template.index("G") < template.index("N"):
            template = template.replace("G", "").replace("N", "NG")
        slots = {"G": [gender_word], "M": mods, "N": [noun], "O": [occasion], "C": context}
        words = [w for slot in template for w in slots[slot] if w]
        if b >= 0:
            # shoppers type a brand mostly in lower case, first ("rubzoo tank top") or last
            brand = brand_names[b] if ui[20] < BRAND_AS_WRITTEN_RATE else brand_names[b].lower()
            words.insert(0 if ui[21] < 0.7 else len(words), brand)
        if ui[13] < FILLER_RATE:
            words.insert(0, FILLER_QUERY_WORDS[int(ui[14] * len(FILLER_QUERY_WORDS))])
        if ui[15] < typo_rate[i]:
            long_words = [j for j, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
            if long_words:
                j = long_words[int(ui[16] * len(long_words))]
                words[j] = _typo(words[j], ui[17], ui[18])
        query = " ".join(words)
        style = case_style[i] if ui[19] < 0.9 else 0
        if style == 1:
            query = query.title()
        elif style == 2:
            query = query[:1].upper() + query[1:]
        elif style == 3:
            query = query.upper()
        out.append(query)
    return out
