{%- set raw_columns = [
    'event_id', 'user_id', 'session_id', 'ts', 'action', 'query', 'search_id', 'item_id',
    'position', 'is_sponsored'
] -%}
{%- set actions = ['search', 'impression', 'click', 'add_to_cart', 'purchase'] -%}

with

source as (

    {{ read_raw_rows(source('raw', 'events')) }}

),

catalog as (

    select item_id from {{ ref('stg_raw__items') }}

),

fields as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        {{ json_text_fields('raw_row', raw_columns) }} as raw_text

    from source

),

trimmed as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        {%- for column in raw_columns %}
        {{ clean_text('raw_text.' ~ column) }} as {{ column }}_text{{ ',' if not loop.last }}
        {%- endfor %}

    from fields

),

typed as (

    select
        source_row_number,
        raw_row,
        is_json_object,
        event_id_text as event_id,
        user_id_text as user_id,
        session_id_text as session_id,
        {{ parse_utc_timestamp('ts_text') }} as ts,
        lower(action_text) as action,
        query_text as query,
        search_id_text as search_id,
        item_id_text as item_id,
        {{ parse_integer('position_text') }} as position,
        {{ parse_boolean('is_sponsored_text') }} as is_sponsored_flag,
        ts_text,
        position_text,
        is_sponsored_text

    from trimmed

),

-- Materialized: three CTEs below read it, and inlining it would parse the raw JSON three times.
fingerprinted as {{ cte_materialized() }} (

    select
        *,
        {{ row_fingerprint([
            'event_id', 'user_id', 'session_id', 'ts', 'action', 'query', 'search_id', 'item_id',
            'position', 'is_sponsored_flag'
        ]) }} as content_fingerprint

    from typed

),

{{ duplicate_copies_flagged('fingerprinted', 'event_id') }},

catalog_checked as (

    select
        duplicates_flagged.*,
        catalog.item_id is not null as is_in_catalog

    from duplicates_flagged
    left join catalog
        on duplicates_flagged.item_id = catalog.item_id

),

final as (

    select
        source_row_number,
        event_id,
        user_id,
        session_id,
        ts,
        action,
        query,
        search_id,
        item_id,
        position,
        coalesce(is_sponsored_flag, false) as is_sponsored,
        raw_row,
        nullif(concat_ws('; ',
            case when not is_json_object then 'unparseable row' end,
            -- Exports often have no event id, so the reason says how to add one. None is made up
            -- here: identical rows would then be separate purchases instead of one row logged
            -- twice, and only the owner of the export knows which they are.
            case
                when event_id is null
                    then 'missing event_id (number the rows if the export has none, see docs/raw-data.md)'
            end,
            case when user_id is null then 'missing user_id' end,
            case
                when action is null then 'missing action'
                when action not in ({{ "'" ~ actions | join("', '") ~ "'" }}) then 'unknown action'
            end,
            case
                when ts_text is null then 'missing ts'
                when ts is null then 'unparseable ts'
            end,
            case
                when action in ('impression', 'click', 'add_to_cart', 'purchase') and item_id is null
                    then 'missing item_id'
            end,
            case when action = 'search' and query is null then 'search without query' end,
            case
                when position_text is not null
                    and (position is null or position < 1)
                    then 'position not an integer >= 1'
            end,
            case when is_sponsored_text is not null and is_sponsored_flag is null then 'is_sponsored not boolean' end,
            case
                when action is distinct from 'search' and item_id is not null and not is_in_catalog
                    then 'item not in catalog'
            end,
            case when has_conflicting_duplicate then 'duplicate event_id with different content' end,
            case when is_extra_copy then 'exact duplicate' end
        ), '') as rejection_reason

    from catalog_checked

)

select * from final
