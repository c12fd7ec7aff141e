{%- set gap_seconds = var('session_gap_minutes') * 60 -%}

with

events as (

    select * from {{ ref('stg_raw__events') }}

),

logged_sessions as (

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
        session_id as session_name

    from events
    where session_id is not null

),

-- Events without a session_id are cut into sessions per user by inactivity. They are ordered
-- among themselves only, so a logged session in between does not split them, and only they
-- pay for the sort.
unlogged_gaps as (

    select
        *,
        lag(ts) over (partition by user_id order by ts, event_id) as previous_ts

    from events
    where session_id is null

),

derived_sessions as (

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
        '#' || cast(
            sum(
                case
                    when previous_ts is null then 1
                    when {{ seconds_between('previous_ts', 'ts') }} > {{ gap_seconds }} then 1
                    else 0
                end
            ) over (
                partition by user_id order by ts, event_id
                rows between unbounded preceding and current row
            ) as {{ dbt.type_string() }}
        ) as session_name

    from unlogged_gaps

),

sessioned as (

    select * from logged_sessions
    union all
    select * from derived_sessions

),

final as (

    select
        event_id,
        user_id,
        user_id || '/' || session_name as session_key,
        session_id,
        session_id is null as is_derived_session,
        ts,
        action,
        query,
        search_id,
        item_id,
        position,
        is_sponsored

    from sessioned

)

select * from final
