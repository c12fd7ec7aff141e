"""C2 comparison: how much shoppers click in a purchase session, and how often they click several
variants (items) of the product family they buy."""

from __future__ import annotations

import duckdb

from warehouse.generator.stats_db import one


def comparison(con: duckdb.DuckDBPyConnection) -> dict:
    c2 = one(
        con,
        """
        with ps as (select distinct user_id, session_id from purchases),
        per_session as (
            select ps.user_id, ps.session_id,
                   count(e.event_id) filter (where e.action = 'click') as clicks,
                   count(distinct e.item_id) filter (where e.action = 'click') as items_clicked
            from ps join events e using (user_id, session_id) group by all),
        variants as (
            select p.event_id,
                   count(distinct e.item_id) filter (where i.parent_id = p.parent_id) as variants_clicked
            from purchases p
            left join events e on e.user_id = p.user_id and e.session_id = p.session_id and e.action = 'click'
            left join items i on i.item_id = e.item_id
            group by p.event_id)
        select (select avg(clicks) from per_session) as clicks_per_purchase_session,
               (select avg(items_clicked) from per_session) as items_clicked_per_purchase_session,
               (select avg((variants_clicked >= 2)::int)
                from purchases p left join variants v using (event_id))
                   as share_comparing_2plus_variants,
               (select avg(coalesce(variants_clicked, 0))
                from purchases p left join variants v using (event_id))
                   as variants_clicked_per_purchase""",
    )
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in c2.items()}
