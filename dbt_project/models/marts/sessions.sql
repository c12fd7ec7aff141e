with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

final as (

    select
        session_key,
        min(user_id) as user_id,
        min(session_id) as session_id,
        min(ts) as started_at,
        max(ts) as ended_at,
        cast(count(*) as integer) as n_events,
        cast(sum(case when action = 'search' then 1 else 0 end) as integer) as n_searches,
        cast(sum(case when action = 'impression' then 1 else 0 end) as integer) as n_impressions,
        cast(sum(case when action = 'click' then 1 else 0 end) as integer) as n_clicks,
        cast(sum(case when action = 'add_to_cart' then 1 else 0 end) as integer) as n_add_to_carts,
        cast(sum(case when action = 'purchase' then 1 else 0 end) as integer) as n_purchases

    from events
    group by session_key

)

select * from final
