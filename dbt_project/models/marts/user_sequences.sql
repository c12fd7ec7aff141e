with

events as (

    select * from {{ ref('int_events_leakage_filtered') }}

),

catalog as (

    select * from {{ ref('stg_raw__items') }}

),

history_events as (

    select * from events
    where action <> 'impression'

),

final as (

    select
        history_events.user_id,
        cast(row_number() over (
            partition by history_events.user_id order by history_events.ts, history_events.event_id
        ) as integer) as seq_no,
        history_events.event_id,
        history_events.session_key,
        history_events.ts,
        history_events.action,
        history_events.linked_query as query,
        history_events.query_norm,
        history_events.linked_search_id as search_id,
        history_events.item_id,
        catalog.category,
        history_events.position

    from history_events
    left join catalog
        on history_events.item_id = catalog.item_id

)

select * from final
