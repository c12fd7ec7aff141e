"""Repeat purchases and the long tail: how often a user buys again an article they bought before, how much
of the catalog is bought once or never, and how many test targets a model trained on the purchases alone
would never have seen (the figure a real purchase export is compared on, docs/synthetic-data.md)."""

from __future__ import annotations

import duckdb

from warehouse.generator.stats_db import one, share


def repeats(con: duckdb.DuckDBPyConnection) -> dict:
    """``rebuy_share``: purchases of an article the same user purchased earlier; ``bought_once_share``:
    purchased items bought exactly once; ``never_bought_share``: catalog items nobody bought;
    ``target_rebuy_share``: test targets (each user's last purchase) that buy an article again;
    ``loo_cold_share``: test targets, of users with 3 purchases or more, whose article is in no user's
    purchases but their last two (RecBole's leave-one-out on the purchases: the last one tests, the one
    before validates, the rest train)."""
    stats = one(
        con,
        """
        with ordered as (
            select user_id, item_id,
                   row_number() over (partition by user_id order by ts, event_id) as nth,
                   row_number() over (partition by user_id, item_id order by ts, event_id) as nth_of_item,
                   count(*) over (partition by user_id) as n_purchases
            from purchases),
        per_item as (select item_id, count(*) as n from purchases group by item_id),
        train_items as (select distinct item_id from ordered where nth <= n_purchases - 2),
        last as (select * from ordered where nth = n_purchases)
        select (select count(*) from ordered) as purchases,
               (select avg((nth_of_item > 1)::int) from ordered) as rebuy_share,
               (select count(*) from per_item) as purchased_items,
               (select avg((n = 1)::int) from per_item) as bought_once_share,
               1 - (select count(*) from per_item) / (select count(*) from items) as never_bought_share,
               (select avg((nth_of_item > 1)::int) from last) as target_rebuy_share,
               (select count(*) from last where n_purchases >= 3) as loo_test_targets,
               (select avg((item_id not in (select item_id from train_items))::int)
                from last where n_purchases >= 3) as loo_cold_share""",
    )
    return {k: share(v) if isinstance(v, float) else v for k, v in stats.items()}
