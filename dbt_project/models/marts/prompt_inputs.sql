{%- set max_history = var('max_history_events') | int -%}
{%- if max_history < 1 -%}
    {{ exceptions.raise_compiler_error(
        "var max_history_events must be a whole number >= 1, got " ~ var('max_history_events')
    ) }}
{%- endif -%}
{%- set history_fields = [
    'seq_no', 'ts', 'action', 'query', 'item_id', 'title', 'category', 'brand', 'color', 'size',
    'season', 'holiday', 'occasion'
] -%}

with

targets as (

    select * from {{ ref('splits') }}

),

sequences as (

    select * from {{ ref('user_sequences') }}

),

catalog as (

    select * from {{ ref('items') }}

),

described_events as (

    select
        sequences.user_id,
        sequences.seq_no,
        sequences.ts,
        sequences.action,
        sequences.query,
        sequences.item_id,
        catalog.title,
        sequences.category,
        catalog.brand,
        catalog.color,
        catalog.size,
        catalog.season,
        catalog.holiday,
        catalog.occasion,
        -- Histories are joined by blocks of max_history_events consecutive events: a target's
        -- window of that length spans at most two blocks, so each target meets at most twice
        -- that many events however long the user's history is (no quadratic join).
        cast(floor(sequences.seq_no / {{ max_history }}) as bigint) as history_block

    from sequences
    left join catalog
        on sequences.item_id = catalog.item_id

),

target_blocks as (

    select target_id, user_id, seq_no as target_seq_no, cast(floor((seq_no - 1) / {{ max_history }}) as bigint) as history_block
    from targets
    union
    select target_id, user_id, seq_no as target_seq_no, cast(floor((seq_no - {{ max_history }}) / {{ max_history }}) as bigint) as history_block
    from targets

),

history_rows as (

    select
        target_blocks.target_id,
        described_events.*

    from target_blocks
    inner join described_events
        on target_blocks.user_id = described_events.user_id
        and target_blocks.history_block = described_events.history_block
        and described_events.seq_no >= target_blocks.target_seq_no - {{ max_history }}
        and described_events.seq_no < target_blocks.target_seq_no

),

histories as (

    select
        target_id,
        {{ ordered_list(struct_of(history_fields), 'seq_no') }} as history

    from history_rows
    group by target_id

),

latest_queries as (

    select
        user_id,
        seq_no,
        {{ last_non_null("case when action = 'search' then query end") }} over (
            partition by user_id order by seq_no rows between unbounded preceding and 1 preceding
        ) as latest_query,
        {{ last_non_null("case when action = 'search' then ts end") }} over (
            partition by user_id order by seq_no rows between unbounded preceding and 1 preceding
        ) as latest_query_ts

    from sequences

),

final as (

    select
        targets.target_id,
        targets.user_id,
        targets.split,
        targets.category,
        targets.target_item_id,
        target_items.title as target_title,
        targets.target_ts,
        targets.is_cold_item,
        targets.seq_no - 1 as n_history_events,
        coalesce(histories.history, {{ empty_list() }}) as history,
        latest_queries.latest_query,
        latest_queries.latest_query_ts

    from targets
    inner join catalog as target_items
        on targets.target_item_id = target_items.item_id
    left join histories
        on targets.target_id = histories.target_id
    inner join latest_queries
        on targets.user_id = latest_queries.user_id
        and targets.seq_no = latest_queries.seq_no

)

select * from final
