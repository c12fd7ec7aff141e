"""C1 turnover: how often the test target (each user's last purchase) is an item nobody interacted with
before, how many purchases are of new launches, and how the catalog launches and retires families."""

from __future__ import annotations

import duckdb

from warehouse.generator.stats_db import one, share

NEW_LAUNCH_DAYS = 30


def turnover(con: duckdb.DuckDBPyConnection) -> dict:
    # clicks of the purchaser in the purchase session itself do not count, as in the paper's filtering
    c1 = one(
        con,
        f"""
        with seen as (
            select t.event_id,
                   count(x.item_id) filter (where x.ts < t.ts
                       and not (x.user_id = t.user_id and x.session_id = t.session_id)) as before
            from targets t left join interactions x on x.item_id = t.item_id
            group by t.event_id),
        shown as (
            select t.event_id, count(x.item_id) as before
            from targets t left join events x on x.item_id = t.item_id and x.ts < t.ts
                 and not (x.user_id = t.user_id and x.session_id = t.session_id)
            group by t.event_id)
        select count(*) as test_targets,
               avg((seen.before = 0)::int) as cold_share,
               avg((shown.before = 0)::int) as never_shown_share,
               avg((date_diff('day', t.first_seen, t.ts::date) <= {NEW_LAUNCH_DAYS})::int) as new_launch_share
        from targets t join seen using (event_id) join shown using (event_id)""",
    )
    c1.update(
        one(
            con,
            f"""select
            avg((date_diff('day', first_seen, ts::date) <= {NEW_LAUNCH_DAYS})::int)
                as all_purchases_new_launch_share
        from purchases""",
        )
    )
    c1.update(
        one(
            con,
            """select count(distinct date_trunc('month', first_seen)) filter (
                                  where first_seen >= (select min(ts)::date from events)) as launch_months,
                              avg((first_seen >= (select min(ts)::date from events))::int)
                                  as launched_in_period_share,
                              avg((last_seen is not null)::int) as retired_share
                           from (select distinct parent_id, first_seen, last_seen from items)""",
        )
    )
    return {k: share(v) if isinstance(v, float) else v for k, v in c1.items()}
