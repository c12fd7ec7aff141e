with

events as (

    select * from {{ ref('int_events_linked_to_searches') }}

),

catalog as (

    select * from {{ ref('stg_raw__items') }}

),

-- What the search engine ranked on its own: sponsored slots and rows without a position say
-- nothing about organic relevance.
organic_impressions as (

    select
        query_norm,
        item_id,
        linked_search_id,
        position,
        ts

    from events
    where action = 'impression'
        and not is_sponsored
        and position is not null
        and query_norm is not null

),

organic_responses as (

    select
        query_norm,
        item_id,
        sum(case when action = 'click' then 1 else 0 end) as clicks,
        sum(case when action = 'purchase' then 1 else 0 end) as purchases

    from events
    where action in ('click', 'purchase')
        and not is_sponsored
        and query_norm is not null
    group by query_norm, item_id

),

listings as (

    select
        query_norm,
        item_id,
        count(distinct linked_search_id) as n_searches,
        count(*) as impressions,
        min(position) as best_position,
        avg(position) as mean_position,
        min(ts) as first_shown_at,
        max(ts) as last_shown_at

    from organic_impressions
    group by query_norm, item_id

),

final as (

    select
        listings.query_norm,
        listings.item_id,
        catalog.category,
        cast(listings.n_searches as integer) as n_searches,
        cast(listings.impressions as integer) as impressions,
        listings.best_position,
        cast(listings.mean_position as double) as mean_position,
        cast(coalesce(organic_responses.clicks, 0) as integer) as clicks,
        cast(coalesce(organic_responses.purchases, 0) as integer) as purchases,
        listings.first_shown_at,
        listings.last_shown_at,
        cast(row_number() over (
            partition by listings.query_norm
            order by listings.mean_position, listings.best_position, listings.impressions desc, listings.item_id
        ) as integer) as organic_rank

    from listings
    inner join catalog
        on listings.item_id = catalog.item_id
    left join organic_responses
        on listings.query_norm = organic_responses.query_norm
        and listings.item_id = organic_responses.item_id

)

select * from final
