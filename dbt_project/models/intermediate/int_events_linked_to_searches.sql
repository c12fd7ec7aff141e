{%- set linked_actions = ['impression', 'click', 'add_to_cart', 'purchase'] -%}

with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

-- A search's own id is its search_id, or its event_id when the log has none.
searches as (

    select
        event_id,
        user_id,
        session_key,
        ts,
        coalesce(search_id, event_id) as search_key,
        query as search_query,
        {{ normalize_query('query') }} as query_norm,
        row_number() over (
            partition by user_id, coalesce(search_id, event_id) order by ts, event_id
        ) as copy_number

    from events
    where action = 'search'

),

unique_searches as (

    -- a search_id that several search rows reuse links to the first of them
    select
        user_id,
        search_key,
        search_query,
        query_norm

    from searches
    where copy_number = 1

),

linked_by_search_id as (

    select
        events.event_id,
        unique_searches.search_key

    from events
    inner join unique_searches
        on events.user_id = unique_searches.user_id
        and events.search_id = unique_searches.search_key
    where events.action in ({{ "'" ~ linked_actions | join("', '") ~ "'" }})

),

-- Events that name no search of the user fall back to the latest search of their session at
-- or before them. Only these events and the searches go through the window, not every
-- impression. A search sorts before the other events of the same instant because the
-- results it produced are logged with its timestamp.
fallback_candidates as (

    select
        events.event_id,
        events.session_key,
        events.ts,
        1 as sort_group,
        cast(null as {{ dbt.type_string() }}) as search_key

    from events
    left join linked_by_search_id
        on events.event_id = linked_by_search_id.event_id
    where events.action in ({{ "'" ~ linked_actions | join("', '") ~ "'" }})
        and linked_by_search_id.event_id is null

    union all

    select
        event_id,
        session_key,
        ts,
        0 as sort_group,
        search_key

    from searches

),

linked_by_session as (

    select
        event_id,
        {{ last_non_null("search_key") }} over (
            partition by session_key
            order by ts, sort_group, event_id
            rows between unbounded preceding and current row
        ) as search_key

    from fallback_candidates

),

linked as (

    select
        events.event_id,
        events.user_id,
        events.session_key,
        events.session_id,
        events.is_derived_session,
        events.ts,
        events.action,
        events.query,
        events.search_id,
        events.item_id,
        events.position,
        events.is_sponsored,
        linked_searches.search_key as linked_search_id,
        case
            when events.action = 'search' then 'self'
            when linked_by_search_id.search_key is not null then 'search_id'
            when linked_searches.search_key is not null then 'session'
        end as linked_by,
        linked_searches.search_query as linked_query,
        linked_searches.query_norm

    from events
    left join linked_by_search_id
        on events.event_id = linked_by_search_id.event_id
    left join linked_by_session
        on events.event_id = linked_by_session.event_id
    left join unique_searches as linked_searches
        on events.user_id = linked_searches.user_id
        and coalesce(linked_by_search_id.search_key, linked_by_session.search_key) = linked_searches.search_key

),

final as (

    select * from linked

)

select * from final
