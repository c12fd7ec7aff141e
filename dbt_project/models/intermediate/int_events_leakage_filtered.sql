with

events as (

    select * from {{ ref('int_events_linked_to_searches') }}

),

last_session_purchases as (

    select
        session_key,
        item_id,
        max(ts) as last_purchase_ts

    from events
    where action = 'purchase'
    group by session_key, item_id

),

final as (

    select events.*

    from events
    left join last_session_purchases
        on events.session_key = last_session_purchases.session_key
        and events.item_id = last_session_purchases.item_id
    -- A click or add-to-cart on an item that the same session buys later (or at the same
    -- instant) announces the purchase: keeping it would leak the target into the model's input.
    where not (
        events.action in ('click', 'add_to_cart')
        and last_session_purchases.last_purchase_ts is not null
        and last_session_purchases.last_purchase_ts >= events.ts
    )

)

select * from final
