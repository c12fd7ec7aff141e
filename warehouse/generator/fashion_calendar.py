"""Seasons and shopping holidays: what the calendar does to fashion demand (the paper's C3).

Seasons are meteorological (northern hemisphere): Spring is March-May, Summer June-August, Fall
September-November, Winter December-February. Each holiday has a date rule, a window of days before it in
which shoppers buy for it, the subcategories that carry holiday editions, and the words that titles and
queries use for it. `compute_stats` uses the same windows to measure the holiday lift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from warehouse.generator.vocabulary import SEASONS

# Month (1-12) -> index into SEASONS.
MONTH_SEASON = (3, 3, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3)
# First month of each season, for launch planning (Winter starts in December).
SEASON_FIRST_MONTH = {0: 3, 1: 6, 2: 9, 3: 12}


def season_of(day: date) -> int:
    return MONTH_SEASON[day.month - 1]


def season_distance(a: int, b: int) -> int:
    """0 for the same season, 1 for adjacent seasons, 2 for opposite ones (All-season is never passed)."""
    d = abs(a - b) % 4
    return min(d, 4 - d)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (Mon=0) of a month, e.g. Thanksgiving = 4th Thursday of November."""
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month = (h + ell - 7 * m + 114) // 31
    day = (h + ell - 7 * m + 114) % 31 + 1
    return date(year, month, day)


@dataclass(frozen=True)
class Holiday:
    """A shopping holiday: when it falls, how long before it people shop for it, and what they buy."""

    name: str
    window_days: int  # days before the holiday in which its editions sell
    mission_share: float  # share of purchase missions in the window that are bought for the holiday
    catalog_weight: float  # relative number of holiday-edition families per occurrence
    subcategories: tuple[str, ...]
    title_words: tuple[str, ...]
    query_words: tuple[str, ...]
    gift_gender: str | None = None  # "Women"/"Men": bought for someone of that gender; None: mostly self
    gift_share: float = 0.0  # share of its missions that are gifts for another person

    def on(self, year: int) -> date:
        rules = {
            "New Year": lambda y: date(y, 12, 31),
            "Valentine's Day": lambda y: date(y, 2, 14),
            "St. Patrick's Day": lambda y: date(y, 3, 17),
            "Easter": _easter,
            "Mother's Day": lambda y: _nth_weekday(y, 5, 6, 2),
            "Father's Day": lambda y: _nth_weekday(y, 6, 6, 3),
            "Back to School": lambda y: date(y, 8, 20),
            "Halloween": lambda y: date(y, 10, 31),
            "Thanksgiving": lambda y: _nth_weekday(y, 11, 3, 4),
            "Christmas": lambda y: date(y, 12, 25),
        }
        return rules[self.name](year)


HOLIDAYS: tuple[Holiday, ...] = (
    Holiday(
        "Christmas",
        35,
        0.40,
        3.0,
        (
            "Sweaters",
            "Pajamas",
            "Hoodies",
            "Slippers",
            "Necklaces",
            "Earrings",
            "Bracelets",
            "Watches",
            "Beanies",
            "Scarves",
            "Gloves",
            "Handbags",
            "Wallets",
            "Luggage Sets",
            "Tote Bags",
            "Ties",
        ),
        ("Christmas", "Xmas Holiday", "Christmas Gifts"),
        ("christmas", "xmas", "christmas gift", "holiday", "ugly christmas"),
        gift_share=0.35,
    ),
    Holiday(
        "Halloween",
        35,
        0.35,
        2.0,
        ("Costumes", "T-Shirts", "Earrings", "Hoodies", "Tote Bags", "Hair Accessories", "Pajamas"),
        ("Halloween", "Spooky Halloween"),
        ("halloween", "spooky", "halloween party"),
    ),
    Holiday(
        "Valentine's Day",
        21,
        0.30,
        1.5,
        (
            "Necklaces",
            "Bracelets",
            "Rings",
            "Earrings",
            "Dresses",
            "Pajamas",
            "Heels",
            "Handbags",
            "Crossbody Bags",
        ),
        ("Valentine's Day", "Valentines Gifts"),
        ("valentines", "valentines day", "valentine gift", "valentine's day"),
        gift_share=0.45,
    ),
    Holiday(
        "Easter",
        21,
        0.15,
        0.7,
        ("Dresses", "T-Shirts", "Hair Accessories", "Flats", "Tote Bags"),
        ("Easter",),
        ("easter", "easter sunday"),
    ),
    Holiday(
        "Mother's Day",
        21,
        0.25,
        1.2,
        ("Necklaces", "Bracelets", "Handbags", "Tote Bags", "Scarves", "Watches", "Slippers", "Pajamas"),
        ("Mother's Day Gifts", "Gifts for Mom"),
        ("mothers day", "mothers day gift", "gift for mom", "mom gift"),
        gift_gender="Women",
        gift_share=0.8,
    ),
    Holiday(
        "Father's Day",
        21,
        0.25,
        1.0,
        ("Wallets", "Belts", "Watches", "T-Shirts", "Loafers", "Ties", "Duffel Bags", "Laptop Bags"),
        ("Father's Day Gifts", "Gifts for Dad"),
        ("fathers day", "fathers day gift", "gift for dad", "dad gift"),
        gift_gender="Men",
        gift_share=0.8,
    ),
    Holiday(
        "Thanksgiving",
        21,
        0.12,
        0.6,
        ("Sweaters", "Cardigans", "T-Shirts", "Ankle Boots", "Scarves", "Suitcases"),
        ("Thanksgiving", "Fall Harvest"),
        ("thanksgiving", "thanksgiving outfit"),
    ),
    Holiday(
        "New Year",
        14,
        0.20,
        0.8,
        ("Dresses", "Heels", "Earrings", "Necklaces", "Handbags", "Blazers"),
        ("New Years Eve", "NYE Party"),
        ("new years eve", "new year", "nye"),
    ),
    Holiday(
        "Back to School",
        35,
        0.25,
        1.0,
        ("Backpacks", "Sneakers", "Jeans", "T-Shirts", "Hoodies", "Laptop Bags"),
        ("Back to School",),
        ("back to school", "for school", "school"),
    ),
    Holiday(
        "St. Patrick's Day",
        14,
        0.20,
        0.5,
        ("T-Shirts", "Baseball Caps", "Hoodies", "Necklaces"),
        ("St Patricks Day", "Shamrock Irish"),
        ("st patricks day", "st patrick", "shamrock", "irish"),
    ),
)
HOLIDAY_NAMES = tuple(h.name for h in HOLIDAYS)
HOLIDAY_SEASON = {  # the season a holiday edition is sold in
    "Christmas": 3,
    "Halloween": 2,
    "Valentine's Day": 3,
    "Easter": 0,
    "Mother's Day": 0,
    "Father's Day": 1,
    "Thanksgiving": 2,
    "New Year": 3,
    "Back to School": 1,
    "St. Patrick's Day": 0,
}
assert set(HOLIDAY_SEASON) == set(HOLIDAY_NAMES) and len(SEASONS) == 5


@dataclass(frozen=True)
class HolidayOccurrence:
    holiday: int  # index into HOLIDAYS
    day: int  # days since the period start
    date: date


def holiday_occurrences(start: date, end: date, lead_days: int = 0) -> list[HolidayOccurrence]:
    """Every holiday date whose window [date - window, date] overlaps [start, end + lead_days]."""
    out = []
    for year in range(start.year - 1, end.year + 2):
        for hi, h in enumerate(HOLIDAYS):
            d = h.on(year)
            if d - timedelta(days=h.window_days) <= end + timedelta(days=lead_days) and d >= start:
                out.append(HolidayOccurrence(hi, (d - start).days, d))
    return sorted(out, key=lambda o: (o.day, o.holiday))


def holiday_window_matrix(start: date, n_days: int) -> np.ndarray:
    """(n_days, n_holidays) bool: day d lies in the shopping window before holiday h."""
    out = np.zeros((n_days, len(HOLIDAYS)), dtype=bool)
    for occ in holiday_occurrences(start, start + timedelta(days=n_days - 1)):
        window = HOLIDAYS[occ.holiday].window_days
        lo, hi = max(0, occ.day - window), min(n_days - 1, occ.day)
        if lo <= hi:
            out[lo : hi + 1, occ.holiday] = True
    return out


def day_seasons(start: date, n_days: int) -> np.ndarray:
    """(n_days,) calendar season index of each day of the period."""
    months = np.array([(start + timedelta(days=i)).month for i in range(n_days)])
    return np.asarray(MONTH_SEASON, dtype=np.int8)[months - 1]


def shopping_volume(start: date, n_days: int) -> np.ndarray:
    """(n_days,) relative number of shopping sessions per day.

    Weekends are busier, holiday windows busier still, and the days after Thanksgiving (Black Friday to
    Cyber Monday) are the busiest of the year; the magnitudes are illustrative, not measured.
    """
    weekday = np.array([(start + timedelta(days=i)).weekday() for i in range(n_days)])
    volume = np.where(weekday >= 5, 1.15, 1.0)
    windows = holiday_window_matrix(start, n_days)
    boost = np.array([0.8 if h.name == "Christmas" else 0.25 for h in HOLIDAYS])
    volume = volume + (windows * boost).max(axis=1)
    for occ in holiday_occurrences(start, start + timedelta(days=n_days - 1)):
        if HOLIDAYS[occ.holiday].name == "Thanksgiving":
            volume[occ.day + 1 : min(n_days, occ.day + 5)] += 1.5
    return volume
