"""The generator's statistics on hand-made logs, where every figure can be counted by hand."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.generator.stats_db import connect_raw
from warehouse.generator.stats_repeats import repeats


def test_repeat_statistics_on_hand_made_purchases(tmp_path: Path):
    # u1 buys a, b, a, c: one re-buy, c never bought before; u2 buys b, d, a; item e is never bought
    rows = [("u1", "a"), ("u1", "b"), ("u1", "a"), ("u1", "c"), ("u2", "b"), ("u2", "d"), ("u2", "a")]
    ts = pa.array([1_700_000_000_000_000 + 86_400_000_000 * n for n in range(len(rows))])
    pq.write_table(
        pa.table(
            {
                "event_id": [f"e{n}" for n in range(len(rows))],
                "user_id": [u for u, _ in rows],
                "session_id": [f"s{n}" for n in range(len(rows))],
                "ts": ts.cast(pa.timestamp("us", tz="UTC")),
                "action": ["purchase"] * len(rows),
                "item_id": [i for _, i in rows],
                "search_id": pa.nulls(len(rows), pa.string()),
                "position": pa.nulls(len(rows), pa.int32()),
                "is_sponsored": [False] * len(rows),
            }
        ),
        tmp_path / "events.parquet",
    )
    items = list("abcde")
    pq.write_table(
        pa.table(
            {
                "item_id": items,
                "parent_id": items,
                "season": ["all"] * 5,
                "holiday": [""] * 5,
                "first_seen": pa.array([0] * 5, pa.date32()),
                "subcategory": ["Dresses"] * 5,
            }
        ),
        tmp_path / "items.parquet",
    )
    con = connect_raw(tmp_path)
    rep = repeats(con)
    con.close()
    assert rep["purchases"] == 7 and rep["rebuy_share"] == round(1 / 7, 4)
    assert rep["purchased_items"] == 4 and rep["bought_once_share"] == 0.5  # c and d
    assert rep["never_bought_share"] == 0.2  # e
    assert rep["target_rebuy_share"] == 0.0  # u2 had not bought a before; u1 did
    # u1 tests c (trained on a, b: cold), u2 tests a (trained on b; u1's a trains: warm)
    assert rep["loo_test_targets"] == 2 and rep["loo_cold_share"] == 0.5
