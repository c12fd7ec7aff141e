with

checked_events as (

    select * from {{ ref('base_raw__events') }}

),

final as (

    select
        event_id,
        user_id,
        session_id,
        ts,
        action,
        query,
        search_id,
        item_id,
        position,
        is_sponsored,
        source_row_number

    from checked_events
    where rejection_reason is null

)

select * from final
