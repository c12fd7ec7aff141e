"""Clock times: when each session starts and when each of its events happens.

Sessions start at a time of day drawn from an evening-heavy daily profile and never cross midnight (so an
event stays on the day whose catalog it was generated from); a user's sessions are moved apart when they
would overlap. Within a session, events follow each other by the gaps the behaviour model drew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Relative sessions per hour of day (UTC); illustrative e-commerce profile with an evening peak.
HOURLY_PROFILE = np.array(
    [
        0.3,
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.4,
        0.7,
        0.9,
        1.0,
        1.0,
        1.1,
        1.3,
        1.2,
        1.0,
        1.0,
        1.1,
        1.2,
        1.4,
        1.7,
        1.9,
        1.8,
        1.3,
        0.7,
    ]
)
DAY = 86_400
LAST_SECOND = DAY - 60  # sessions end before 23:59
MIN_SESSION_GAP = 600  # seconds between two sessions of one user
RESCHEDULE_ROUNDS = 8


@dataclass
class Timeline:
    order: np.ndarray  # permutation that sorts events by (session, key)
    event_seconds: np.ndarray  # seconds since period start of each event, in `order`
    session_start: np.ndarray  # seconds since period start of each session


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    hour = rng.choice(24, size=n, p=HOURLY_PROFILE / HOURLY_PROFILE.sum())
    return hour * 3600 + rng.random(n) * 3600


def schedule(
    session: np.ndarray,
    key: np.ndarray,
    gap: np.ndarray,
    session_user: np.ndarray,
    session_day: np.ndarray,
    rng: np.random.Generator,
) -> Timeline:
    """Event times from per-event gaps; session starts from days, the daily profile and no-overlap."""
    order = np.lexsort((key, session))
    s = session[order]
    g = gap[order].astype(np.float64)
    first = np.ones(s.size, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    g[first] = 0.0
    cum = np.cumsum(g)
    seg_start = np.maximum.accumulate(np.where(first, np.arange(s.size), 0))
    offset = cum - cum[seg_start] if s.size else cum
    n_sessions = session_user.size
    duration = np.zeros(n_sessions)
    np.maximum.at(duration, s, offset)
    duration = np.minimum(duration, LAST_SECOND - 1)

    def draw(rows: np.ndarray) -> np.ndarray:
        return np.minimum(_time_of_day(rng, rows.size), LAST_SECOND - duration[rows])

    tod = draw(np.arange(n_sessions))
    for _ in range(RESCHEDULE_ROUNDS):
        start = session_day * float(DAY) + tod
        by_user = np.lexsort((start, session_user))
        su, st, en = session_user[by_user], start[by_user], start[by_user] + duration[by_user]
        clash = np.zeros(n_sessions, dtype=bool)
        clash[1:] = (su[1:] == su[:-1]) & (st[1:] < en[:-1] + MIN_SESSION_GAP)
        if not clash.any():
            break
        moved = by_user[clash]
        tod[moved] = draw(moved)
    session_start = session_day * float(DAY) + tod
    return Timeline(order=order, event_seconds=session_start[s] + offset, session_start=session_start)
