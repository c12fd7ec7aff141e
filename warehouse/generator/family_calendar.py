"""A family's place in the calendar: whether it is a holiday edition, its season, and the days it
launches and retires (C1). Seasonal families launch shortly before their season and sell until soon after
it, holiday editions weeks before their holiday until just after it, all-season ones at any time for a
lognormal lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from warehouse.generator.fashion_calendar import (
    HOLIDAY_NAMES,
    HOLIDAY_SEASON,
    HOLIDAYS,
    SEASON_FIRST_MONTH,
    holiday_occurrences,
)
from warehouse.generator.presets import GeneratorPreset
from warehouse.generator.vocabulary import ALL_SEASON, SEASONS, SUBCATEGORIES

# "Still sold" sentinel for last sale days (last_seen is null in items.parquet).
NEVER = np.int32(10**6)


@dataclass
class FamilyCalendar:
    holiday: np.ndarray  # -1: not a holiday edition
    season: np.ndarray
    first_day: np.ndarray  # days since start; may be negative (launched before the period)
    last_day: np.ndarray  # days since start, NEVER when still sold at the end


def family_calendar(
    preset: GeneratorPreset,
    n_days: int,
    subcats: np.ndarray,
    fam_subcat: np.ndarray,
    rng: np.random.Generator,
) -> FamilyCalendar:
    """Holiday, season and sale days of the families of subcategories ``fam_subcat``."""
    holiday, holiday_day = _holiday_editions(preset, subcats, fam_subcat, rng)
    season = _seasons(subcats, fam_subcat, holiday, rng)
    first, last = _sale_days(preset.start, n_days, holiday, holiday_day, season, rng)
    return FamilyCalendar(holiday=holiday, season=season, first_day=first, last_day=last)


def _holiday_editions(
    preset: GeneratorPreset, subcats: np.ndarray, fam_subcat: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(holiday, day of the holiday's occurrence it is made for) per family; -1 and 0 when none."""
    n_fam = fam_subcat.size
    fam_holiday = np.full(n_fam, -1, dtype=np.int8)
    occurrences = holiday_occurrences(preset.start, preset.end)
    eligible = {
        s: [hi for hi, h in enumerate(HOLIDAYS) if SUBCATEGORIES[s].name in h.subcategories] for s in subcats
    }
    eligible_share = np.mean([bool(eligible[s]) for s in fam_subcat]) if n_fam else 0.0
    p_holiday = min(0.5, preset.holiday_family_share / max(eligible_share, 1e-9))
    fam_holiday_day = np.zeros(n_fam, dtype=np.int32)
    for s in subcats:
        hols = [h for h in eligible[s] if any(o.holiday == h for o in occurrences)]
        rows = np.flatnonzero(fam_subcat == s)
        if not hols or rows.size == 0:
            continue
        share = 0.6 if SUBCATEGORIES[s].name == "Costumes" else p_holiday
        chosen = rows[rng.random(rows.size) < share]
        w = np.array([HOLIDAYS[h].catalog_weight for h in hols])
        fam_holiday[chosen] = np.array(hols)[rng.choice(len(hols), size=chosen.size, p=w / w.sum())]
        for h in hols:
            days = np.array([o.day for o in occurrences if o.holiday == h])
            r = chosen[fam_holiday[chosen] == h]
            fam_holiday_day[r] = days[rng.integers(0, days.size, size=r.size)]
    return fam_holiday, fam_holiday_day


def _seasons(
    subcats: np.ndarray, fam_subcat: np.ndarray, fam_holiday: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Holiday editions mostly follow their holiday's season, the rest their subcategory's seasons."""
    n_fam = fam_subcat.size
    fam_season = np.empty(n_fam, dtype=np.int8)
    for s in subcats:
        rows = np.flatnonzero(fam_subcat == s)
        fam_season[rows] = rng.choice(len(SEASONS), size=rows.size, p=SUBCATEGORIES[s].seasons)
    is_hol = fam_holiday >= 0
    hol_season = np.array([HOLIDAY_SEASON[n] for n in HOLIDAY_NAMES])
    keep_hol_season = is_hol & (rng.random(n_fam) < 0.6)
    fam_season[keep_hol_season] = hol_season[fam_holiday[keep_hol_season]]
    fam_season[is_hol & ~keep_hol_season] = ALL_SEASON
    return fam_season


def _season_occurrences(start: date, n_days: int, season: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first day, last day, weight) of each occurrence of a season around the period, in days since start."""
    first_month = SEASON_FIRST_MONTH[season]
    firsts, lasts, weights = [], [], []
    for year in range(start.year - 1, start.year + n_days // 365 + 2):
        s = date(year, first_month, 1)
        e = date(year + (first_month + 3 > 12), (first_month + 2) % 12 + 1, 1) - timedelta(days=1)
        fs, ls = (s - start).days, (e - start).days
        # Launches come up to ~2 months before the season; weight by how much of that lies in the period.
        overlap = min(ls, n_days - 1) - max(fs - 60, 0)
        if overlap > 0:
            firsts.append(fs)
            lasts.append(ls)
            weights.append(overlap)
    return np.array(firsts), np.array(lasts), np.array(weights, dtype=float)


def _sale_days(
    start: date,
    n_days: int,
    fam_holiday: np.ndarray,
    fam_holiday_day: np.ndarray,
    fam_season: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) sale day of each family; every family is on sale for at least three weeks inside
    the period."""
    n_fam = fam_holiday.size
    first = np.empty(n_fam, dtype=np.int64)
    last = np.empty(n_fam, dtype=np.int64)
    u = rng.random((n_fam, 4))
    is_hol = fam_holiday >= 0
    # holiday editions: 4-10 weeks before the holiday until 3-21 days after; some stay on as basics
    h = is_hol
    first[h] = fam_holiday_day[h] - (28 + u[h, 0] * 42).astype(np.int64)
    stays = u[h, 2] < 0.15
    last[h] = fam_holiday_day[h] + np.where(stays, 60 + u[h, 1] * 140, 3 + u[h, 1] * 18).astype(np.int64)
    # seasonal families: from 2-11 weeks before a season until up to 6 weeks after; 20% carried to next year
    for season in range(4):
        rows = np.flatnonzero(~is_hol & (fam_season == season))
        if rows.size == 0:
            continue
        fs, ls, w = _season_occurrences(start, n_days, season)
        occ = rng.choice(fs.size, size=rows.size, p=w / w.sum())
        first[rows] = fs[occ] - (14 + u[rows, 0] * 61).astype(np.int64)
        carried = u[rows, 2] < 0.2
        last[rows] = ls[occ] + (-15 + u[rows, 1] * 60).astype(np.int64) + np.where(carried, 365, 0)
    # all-season families: a quarter are the catalog the period starts with, the rest launch during it
    rows = np.flatnonzero(~is_hol & (fam_season == ALL_SEASON))
    established = u[rows, 2] < 0.25
    first[rows] = np.where(established, -(u[rows, 0] * 300), u[rows, 0] * (n_days - 7)).astype(np.int64)
    life = np.exp(np.log(np.where(established, 240.0, 150.0)) + 0.6 * rng.standard_normal(rows.size))
    last[rows] = first[rows] + life.astype(np.int64)
    first = np.minimum(first, n_days - 21)
    last = np.maximum(last, np.maximum(first, 0) + 21)
    return first.astype(np.int32), np.where(last >= n_days, NEVER, last).astype(np.int32)
