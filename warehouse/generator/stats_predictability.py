"""How predictable the test target is from the user's own earlier sessions (brand, color, size,
subcategory, family seen before) and from its own session (a search, the target on the result page)."""

from __future__ import annotations

import duckdb

from warehouse.generator.stats_db import one, share


def predictability(con: duckdb.DuckDBPyConnection) -> dict:
    predict = one(
        con,
        """
        with hist as (
            select t.event_id, i.brand, i.color, i.size, i.subcategory, i.parent_id
            from targets t join events e on e.user_id = t.user_id and e.ts < t.ts
                 and e.action in ('click', 'add_to_cart', 'purchase') and e.session_id <> t.session_id
            join items i on i.item_id = e.item_id),
        ti as (select t.event_id, i.* from targets t join items i using (item_id))
        select avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.brand = ti.brand))::int)
                   as brand_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.color = ti.color))::int)
                   as color_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id and h.size = ti.size))::int)
                   as size_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id
                                                    and h.subcategory = ti.subcategory))::int)
                   as subcategory_seen_before,
               avg((exists (select 1 from hist h where h.event_id = ti.event_id
                                                    and h.parent_id = ti.parent_id))::int)
                   as family_seen_before
        from ti""",
    )
    predict.update(
        one(
            con,
            """
        select avg((exists (select 1 from events s where s.user_id = t.user_id and s.session_id = t.session_id
                            and s.action = 'search' and s.ts < t.ts))::int) as query_in_target_session,
               avg((exists (select 1 from events x where x.user_id = t.user_id and x.session_id = t.session_id
                            and x.action = 'impression' and x.item_id = t.item_id))::int)
                   as target_on_result_page
        from targets t""",
        )
    )
    return {k: share(v) for k, v in predict.items()}
