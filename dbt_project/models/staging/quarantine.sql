with

checked_events as (

    select * from {{ ref('base_raw__events') }}

),

checked_items as (

    select * from {{ ref('base_raw__items') }}

),

rejected_events as (

    select
        'events' as source,
        source_row_number,
        event_id as record_id,
        rejection_reason as reason,
        raw_row

    from checked_events
    where rejection_reason is not null

),

rejected_items as (

    select
        'items' as source,
        source_row_number,
        item_id as record_id,
        rejection_reason as reason,
        raw_row

    from checked_items
    where rejection_reason is not null

),

final as (

    select * from rejected_events
    union all
    select * from rejected_items

)

select * from final
